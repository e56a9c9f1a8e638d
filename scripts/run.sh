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

# fio, the extent's ceiling, reads into 2 MiB huge pages when a hugetlbfs
# has free ones (tools/fio.cc), and into 4 KiB pages otherwise, which on some
# VMs reads much slower (1.5-2x here) and would flatter the extent's ratio.
# As root, reserve 64 pages (128 MiB) for this run when fewer are free, and
# give them back at the end.
hugepages_before=""
hugetlbfs_mounted=""
restore_hugepages() {
  [[ -n "$hugetlbfs_mounted" ]] && umount "$hugetlbfs_mounted" && rmdir "$hugetlbfs_mounted"
  [[ -n "$hugepages_before" ]] && echo "$hugepages_before" > /proc/sys/vm/nr_hugepages
  return 0
}
reserve_hugepages() {
  local free
  free=$(awk '/^HugePages_Free:/ {print $2}' /proc/meminfo)
  if [[ "$(id -u)" != 0 ]]; then
    [[ "${free:-0}" -ge 64 ]] || echo "run.sh: not root, so no 2 MiB pages reserved: fio reads into 4 KiB pages"
    return 0
  fi
  if [[ "${free:-0}" -lt 64 ]]; then
    hugepages_before=$(cat /proc/sys/vm/nr_hugepages)
    echo $((hugepages_before + 64 - ${free:-0})) > /proc/sys/vm/nr_hugepages
  fi
  if ! grep -q " hugetlbfs " /proc/mounts; then
    hugetlbfs_mounted=$(mktemp -d /tmp/kvpool-hugetlbfs.XXXXXX)
    mount -t hugetlbfs -o pagesize=2M nodev "$hugetlbfs_mounted"
  fi
}
trap restore_hugepages EXIT
reserve_hugepages

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
