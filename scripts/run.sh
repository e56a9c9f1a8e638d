#!/usr/bin/env bash
# The main job on a fresh machine: installs what is missing, builds, then on
# the embedded default configuration (state in ./.kvpool):
#   1. kvpool bench            one long prefix, cold, vs the fastest device alone
#   2. kvpool bench longdoc    short long-context sweep: kvpool vs baseline and ablations
#   3. kvpool llama bench-ttft short real-engine TTFT run (when llama.cpp is built)
# Results (JSON, CSV, PNG) go to ./.kvpool/results.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
"$ROOT/scripts/build.sh" "$ROOT/build" >/dev/null
cd "$ROOT"
KVPOOL="$ROOT/build/tools/kvpool"
mkdir -p .kvpool/results

echo "== 1/3 kvpool bench (pool of the default configuration)"
"$KVPOOL" bench --tokens 8192 --repeats 5 --json .kvpool/results/bench-pool.json

echo
echo "== 2/3 kvpool bench longdoc (llama-3.1-8b KV at 1/4 scale, 4K-32K tokens)"
"$KVPOOL" bench longdoc --contexts 4K 16K 32K --repeats 3 --out .kvpool/results

if "$KVPOOL" llama --help >/dev/null 2>&1; then
  echo
  echo "== 3/3 kvpool llama bench-ttft (short)"
  "$KVPOOL" llama bench-ttft --contexts 2K 4K --repeats 2 --out .kvpool/results
else
  echo
  echo "== 3/3 skipped: kvpool was built without llama.cpp (scripts/setup_llama.sh)"
fi
