#!/usr/bin/env bash
# Installs what the end-to-end test of `kvpool serve` needs
# (tests/serve/openai_sdk_test.mjs, ctest name serve_openai_test): Node.js
# >= 18 and the pinned official OpenAI SDK for Node (tests/serve/package.json,
# locked in tests/serve/package-lock.json) in tests/serve/node_modules.
# Called at the end of scripts/setup.sh; idempotent:
#
#   - node / npm missing: Debian's `nodejs` and `npm` are installed with apt
#     (as root, or with sudo), like scripts/setup_llama.sh does for npm;
#   - `npm ci --ignore-scripts` runs only when tests/serve/node_modules is
#     missing or package-lock.json changed since the last install (the lock's
#     sha256 is kept in tests/serve/node_modules/.kvpool-lock.sha256).
#
# Environment: KVPOOL_SKIP_LLAMA=1 skips it (kvpool then builds without its
# llama.cpp parts, so there is no server to test).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="$ROOT/tests/serve"
LOCK="$DIR/package-lock.json"
MODULES="$DIR/node_modules"
STAMP="$MODULES/.kvpool-lock.sha256"
NODE_MIN=18

log() { echo "setup_serve_test: $*"; }
die() { echo "setup_serve_test: ERROR: $*" >&2; exit 1; }

if [[ "${KVPOOL_SKIP_LLAMA:-0}" == "1" ]]; then
  log "KVPOOL_SKIP_LLAMA=1: skipped (kvpool serve is not built without llama.cpp)"
  exit 0
fi

[[ -f "$LOCK" ]] || die "$LOCK is missing"

ensure_node() {
  local missing=()
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
  ((${#missing[@]} == 0)) && return 0
  local sudo=""
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || die "need root to install: ${missing[*]}"
    sudo="sudo"
  fi
  log "installing ${missing[*]} (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  command -v node >/dev/null || die "node is still missing after installing ${missing[*]}"
  command -v npm >/dev/null || die "npm is still missing after installing ${missing[*]}"
}

ensure_node

major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if ! [[ "$major" =~ ^[0-9]+$ ]] || ((major < NODE_MIN)); then
  die "node $(node --version 2>/dev/null || echo '?') is too old: the OpenAI SDK test needs node >= $NODE_MIN"
fi

want="$(sha256sum "$LOCK" | cut -d' ' -f1)"
if [[ -d "$MODULES/openai" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  log "OpenAI SDK already installed in $MODULES (node $(node --version))"
  exit 0
fi

log "npm ci in $DIR (node $(node --version), npm $(npm --version))"
(cd "$DIR" && npm ci --ignore-scripts --no-audit --no-fund) \
  || die "npm ci in $DIR failed (is the npm registry reachable?)"
[[ -f "$MODULES/openai/package.json" ]] || die "npm ci did not install $MODULES/openai"
echo "$want" >"$STAMP"
log "installed openai@$(node -p 'require(process.argv[1]).version' "$MODULES/openai/package.json") in $MODULES"
