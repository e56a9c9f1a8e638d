#!/usr/bin/env bash
# Runs `kvpool bench remote` against a throwaway Redis Cluster on loopback.
#
#   scripts/bench_remote.sh [kvpool bench remote options, e.g. --mib 256 --repeats 5]
#
# Starts 3 masters + 3 replicas with scripts/redis_cluster.sh in a temporary
# directory, on the first base port (from 26100 up) whose six ports and six
# cluster bus ports (+10000) nobody listens on, runs
#   kvpool bench remote --nodes 127.0.0.1:B,127.0.0.1:B+1,127.0.0.1:B+2 "$@"
# and stops the cluster (and removes the directory) on exit, also on
# Ctrl-C. Do not pass --nodes. Paths in the options are relative to the
# current directory (defaults: .kvpool/bench-remote, .kvpool/results).
#
# kvpool binary: $KVPOOL_BIN, else build/tools/kvpool under the repository
# root (scripts/build.sh builds it).
# Exit status: the bench's; 77 when redis-server is not installed; 1 when
# the binary is missing or no cluster could be started.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KVPOOL="${KVPOOL_BIN:-$ROOT/build/tools/kvpool}"
CLUSTER="$ROOT/scripts/redis_cluster.sh"

die() {
  echo "bench_remote.sh: $*" >&2
  exit 1
}

[[ -x $KVPOOL ]] || die "no kvpool binary at $KVPOOL (scripts/build.sh builds it; or set KVPOOL_BIN)"
if ! command -v redis-server >/dev/null 2>&1; then
  echo "bench_remote.sh: redis-server not installed (scripts/setup.sh installs it)" >&2
  exit 77
fi
for arg in "$@"; do
  [[ $arg == --nodes || $arg == --nodes=* ]] && die "--nodes is set by this script; run kvpool bench remote directly for another cluster"
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/kvpool-bench-remote.XXXXXX")"
cleanup() {
  "$CLUSTER" stop "$WORK/cluster" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Local ports of every TCP socket (listening or connected: a connection's
# local port blocks a bind too), one a line.
used_ports() {
  if command -v ss >/dev/null 2>&1; then
    ss -Htan | awk '{ n = split($4, a, ":"); print a[n] }' | sort -u
  fi
}

# True when none of the 6 ports from $1 and their bus ports is taken.
ports_free() {
  local base=$1 taken p i
  taken=$(used_ports)
  for ((i = 0; i < 6; i++)); do
    for p in $((base + i)) $((base + i + 10000)); do
      grep -qx "$p" <<<"$taken" && return 1
      # Without ss: a port that accepts a connection is taken.
      (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && return 1
    done
  done
  return 0
}

base=""
for ((candidate = 26100; candidate < 26100 + 40 * 20; candidate += 20)); do
  ports_free "$candidate" || continue
  if "$CLUSTER" start "$WORK/cluster" "$candidate" 127.0.0.1 >"$WORK/cluster.log" 2>&1; then
    base=$candidate
    break
  fi
  echo "bench_remote.sh: cluster on base port $candidate did not start, trying the next one" >&2
  tail -n 3 "$WORK/cluster.log" >&2 || true
done
[[ -n $base ]] || die "could not start a Redis Cluster on any base port from 26100 (see above)"
tail -n 1 "$WORK/cluster.log"

nodes="127.0.0.1:$base,127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2))"
set +e
"$KVPOOL" bench remote --nodes "$nodes" "$@"
status=$?
set -e
exit "$status"
