#!/usr/bin/env bash
# Fetches a pinned llama.cpp from the npm registry and builds its static
# libraries once, for every kvpool build (Release, RelWithDebInfo, ASan, TSan)
# to link. Called at the end of scripts/setup.sh; safe to run again: each step
# is skipped when its stamp file is in place.
#
#   third_party/node-llama-cpp-3.22.1.tgz   the npm tarball (sha512 verified)
#   third_party/llama.cpp/                  the llama.cpp tree from its git bundle
#   third_party/llama-build/                CMake build (Release, static, native)
#   third_party/llama-install/              installed headers + libllama.a, libggml*.a
#
# Why npm: on this project's machines only Debian apt and the npm registry are
# reachable; node-llama-cpp ships the full llama.cpp source as a git bundle
# (docs/llama_cpp.md). `npm pack` only downloads: no install script runs.
#
# Environment: KVPOOL_SKIP_LLAMA=1 skips everything (kvpool then builds
# without its llama.cpp parts); KVPOOL_JOBS sets the build parallelism.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TP="$ROOT/third_party"
PKG=node-llama-cpp
VERSION=3.22.1
INTEGRITY="sha512-bltIipuWmc123H7tMIgDGKSsSrhmhlQYeVUC48XTjVW7XGJJiJJyCdlTMzQ/LiWoPkGDpcL4FviDpgw7qfTiDw=="
TARBALL="$TP/$PKG-$VERSION.tgz"
SRC="$TP/llama.cpp"
BUILD="$TP/llama-build"
INSTALL="$TP/llama-install"
JOBS="${KVPOOL_JOBS:-$(nproc)}"
# Bump when the build options below change, so that the libraries are rebuilt.
BUILD_ID="$PKG@$VERSION;static;Release;native;v1"

log() { echo "setup_llama: $*"; }
die() { echo "setup_llama: ERROR: $*" >&2; exit 1; }

if [[ "${KVPOOL_SKIP_LLAMA:-0}" == "1" ]]; then
  log "KVPOOL_SKIP_LLAMA=1: skipped (kvpool builds without its llama.cpp parts)"
  exit 0
fi

if [[ -f "$INSTALL/.kvpool-stamp" && "$(cat "$INSTALL/.kvpool-stamp")" == "$BUILD_ID" ]]; then
  log "llama.cpp ($PKG@$VERSION) already built in $INSTALL"
  exit 0
fi

ensure_npm() {
  command -v npm >/dev/null && return 0
  log "installing npm (Debian package)"
  local sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends npm
}

# Print the npm-style "sha512-<base64>" integrity string of a file.
integrity_of() {  # without node: sha512sum's hex digest, turned into bytes, base64
  local hex
  hex="$(sha512sum "$1" | cut -d' ' -f1)"
  echo "sha512-$(printf '%s' "$hex" | sed 's/../\\x&/g' | xargs -0 printf '%b' | base64 -w0)"
}
integrity_of_node() {
  node -e 'const c=require("crypto"),f=require("fs");
    process.stdout.write("sha512-"+c.createHash("sha512").update(f.readFileSync(process.argv[1])).digest("base64"))' "$1"
}

fetch_tarball() {
  if [[ -f "$TARBALL" && -f "$TP/.tarball-verified" ]]; then return 0; fi
  ensure_npm
  mkdir -p "$TP"
  if [[ ! -f "$TARBALL" ]]; then
    log "npm pack $PKG@$VERSION (download only, no install scripts)"
    (cd "$TP" && npm pack --silent --ignore-scripts "$PKG@$VERSION" >/dev/null) \
      || die "npm pack $PKG@$VERSION failed (is the npm registry reachable?)"
  fi
  [[ -f "$TARBALL" ]] || die "npm pack did not produce $TARBALL"
  local got
  if command -v node >/dev/null; then got="$(integrity_of_node "$TARBALL")"; else got="$(integrity_of "$TARBALL")"; fi
  if [[ "$got" != "$INTEGRITY" ]]; then
    mv -f "$TARBALL" "$TARBALL.bad"
    die "integrity mismatch for $TARBALL (moved to $TARBALL.bad)
  expected $INTEGRITY
  got      $got"
  fi
  touch "$TP/.tarball-verified"
  log "verified $TARBALL ($INTEGRITY)"
}

clone_tree() {
  if [[ -f "$SRC/.kvpool-stamp" ]]; then return 0; fi
  rm -rf "$SRC" "$TP/package"
  tar -xzf "$TARBALL" -C "$TP" package/llama/gitRelease.bundle package/llama/llama.cpp.info.json
  git -c advice.detachedHead=false clone -q "$TP/package/llama/gitRelease.bundle" "$SRC"
  cp "$TP/package/llama/llama.cpp.info.json" "$SRC/.kvpool-llama.cpp.info.json"
  rm -rf "$TP/package"
  (cd "$SRC" && git rev-parse HEAD) >"$SRC/.kvpool-stamp"
  log "llama.cpp tree at $(cat "$SRC/.kvpool-stamp") in $SRC"
}

build_libs() {
  log "building llama + ggml static libraries (Release, -j$JOBS); about 3 min on 2 cores"
  cmake -S "$SRC" -B "$BUILD" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$INSTALL" \
    -DBUILD_SHARED_LIBS=OFF -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
    -DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_OPENSSL=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_CURL=OFF \
    -DGGML_CCACHE=OFF -DGGML_NATIVE=ON >"$TP/llama-cmake.log" 2>&1 \
    || die "cmake configure of $SRC failed; see $TP/llama-cmake.log"
  # With every program switched off, the default target is the libraries only.
  ninja -C "$BUILD" -j "$JOBS" >"$TP/llama-build.log" 2>&1 \
    || die "building llama.cpp failed; see $TP/llama-build.log"
  rm -rf "$INSTALL"
  cmake --install "$BUILD" >"$TP/llama-install.log" 2>&1 \
    || die "installing llama.cpp into $INSTALL failed; see $TP/llama-install.log"
  # The tokenizer vocabulary the model generator copies (tools/mkmodel).
  mkdir -p "$INSTALL/share/kvpool"
  cp "$SRC/models/ggml-vocab-llama-spm.gguf" "$INSTALL/share/kvpool/"
  cp "$SRC/.kvpool-stamp" "$INSTALL/share/kvpool/llama.cpp.commit"
  echo "$BUILD_ID" >"$INSTALL/.kvpool-stamp"
  log "installed into $INSTALL"
}

fetch_tarball
clone_tree
build_libs
