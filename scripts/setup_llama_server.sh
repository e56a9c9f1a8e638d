#!/usr/bin/env bash
# Builds the real `llama-server` from the same pinned llama.cpp tree that
# kvpool links (third_party/llama.cpp, made by scripts/setup_llama.sh), for
# `kvpool bench serve` to compare against. A set-up step for that bench only:
# scripts/setup.sh and scripts/test.sh never call it. Safe to run again: the
# build is skipped when its stamp file matches.
#
#   third_party/llama-server-build/              CMake build (Release, native)
#   third_party/llama-server-build/bin/llama-server   the binary (printed at the end)
#
# The web UI is neither built (npm) nor downloaded (Hugging Face bucket):
# LLAMA_BUILD_UI=OFF and LLAMA_USE_PREBUILT_UI=OFF embed an empty UI table.
# Nothing is fetched from the network.
#
# Environment: KVPOOL_JOBS sets the build parallelism (default: nproc).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TP="$ROOT/third_party"
SRC="$TP/llama.cpp"
BUILD="$TP/llama-server-build"
BIN="$BUILD/bin/llama-server"
STAMP="$BUILD/.kvpool-stamp"
JOBS="${KVPOOL_JOBS:-$(nproc)}"

log() { echo "setup_llama_server: $*" >&2; }
die() { echo "setup_llama_server: ERROR: $*" >&2; exit 1; }

ensure_tree() {
  [[ -f "$SRC/.kvpool-stamp" ]] && return 0
  log "pinned llama.cpp tree missing: running scripts/setup_llama.sh first"
  "$ROOT/scripts/setup_llama.sh" >&2
  [[ -f "$SRC/.kvpool-stamp" ]] || die "scripts/setup_llama.sh did not produce $SRC"
}

# Changes when the tree or the options below change, so the binary is rebuilt.
build_id() { echo "$(cat "$SRC/.kvpool-stamp");server;Release;native;v1"; }

configure() {
  cmake -S "$SRC" -B "$BUILD" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DGGML_NATIVE=ON -DGGML_CCACHE=OFF \
    -DLLAMA_BUILD_COMMON=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF >"$TP/llama-server-cmake.log" 2>&1 \
    || die "cmake configure failed; see $TP/llama-server-cmake.log"
}

build() {
  log "building llama-server (Release, -j$JOBS); several minutes on 2 cores"
  cmake --build "$BUILD" --target llama-server -j"$JOBS" >"$TP/llama-server-build.log" 2>&1 \
    || die "building llama-server failed; see $TP/llama-server-build.log"
  [[ -x "$BIN" ]] || die "build finished but $BIN is missing"
}

ensure_tree
if [[ -x "$BIN" && -f "$STAMP" && "$(cat "$STAMP")" == "$(build_id)" ]]; then
  log "llama-server already built"
else
  configure
  build
  build_id >"$STAMP"
  log "built"
fi
echo "$BIN"
