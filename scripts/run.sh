#!/usr/bin/env bash
# The main job on a fresh machine: installs what is missing, builds, and runs
# the default benchmark on the embedded default configuration (state in
# ./.kvpool). Extra arguments go to `kvpool bench`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
"$ROOT/scripts/build.sh" "$ROOT/build" >/dev/null
cd "$ROOT"
exec "$ROOT/build/tools/kvpool" bench --json "$ROOT/.kvpool/bench-pool.json" "$@"
