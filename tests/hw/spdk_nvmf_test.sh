#!/usr/bin/env bash
# Hardware test (ctest label "hw"): the SPDK device end to end over NVMe/TCP
# on 127.0.0.1. Starts SPDK's nvmf_tgt with two Malloc namespaces (two
# subsystems) on a free port, runs the extent device conformance tests, the
# zero-copy tests and the crash test on the SPDK device, then the fault
# tests (a paused target, a killed target), and stops the target. Needs no
# NVMe drive, no VFIO and no hugepages (it falls back to --no-huge), only an
# SPDK install.
#
# Usage: spdk_nvmf_test.sh <dir with the test binaries> <KVPOOL_HAVE_SPDK: ON|OFF>
# SPDK is looked up in $KVPOOL_SPDK_DIR, then /opt/spdk, /usr/local
# (bin/nvmf_tgt, lib/). Exits 77 (skipped) saying why when SPDK is not
# installed or kvpool was built without it. docs/spdk.md has the details.
set -u
bin_dir=${1:?usage: $0 <test binary dir> <ON|OFF>}
have_spdk=${2:-OFF}

skip() { echo "SKIPPED: $*"; exit 77; }

case "$have_spdk" in
  ON|1|TRUE|true) ;;
  *) skip "kvpool was built without SPDK (configure with SPDK's pkg-config files on" \
          "PKG_CONFIG_PATH, see docs/spdk.md)" ;;
esac
spdk_dir=""
for d in "${KVPOOL_SPDK_DIR:-}" /opt/spdk /usr/local; do
  if [[ -n "$d" && -x "$d/bin/nvmf_tgt" ]]; then spdk_dir=$d; break; fi
done
[[ -n "$spdk_dir" ]] || skip "SPDK's nvmf_tgt not found (set KVPOOL_SPDK_DIR to SPDK's install" \
                              "prefix; checked \$KVPOOL_SPDK_DIR, /opt/spdk, /usr/local)"
for t in extent_device_test extent_zero_copy_test crash_test spdk_device_test; do
  [[ -x "$bin_dir/$t" ]] || { echo "FAILED: $bin_dir/$t is missing"; exit 1; }
done
command -v python3 > /dev/null || skip "python3 is needed to pick a free port"

work=$(mktemp -d "${TMPDIR:-/tmp}/kvpool-spdk-hw.XXXXXX")
tgt_pid=""
cleanup() {
  if [[ -n "$tgt_pid" ]] && kill -0 "$tgt_pid" 2> /dev/null; then
    kill -CONT "$tgt_pid" 2> /dev/null
    kill -INT "$tgt_pid" 2> /dev/null
    for _ in $(seq 50); do kill -0 "$tgt_pid" 2> /dev/null || break; sleep 0.1; done
    kill -KILL "$tgt_pid" 2> /dev/null
  fi
  if [[ -n "$tgt_pid" ]]; then  # what the target leaves when it is killed
    rm -f "/dev/shm/nvmf_trace.pid$tgt_pid"
    rmdir "/var/run/dpdk/spdk_pid$tgt_pid" 2> /dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
nqn0=nqn.2016-06.io.spdk:kvpool-hw0
nqn1=nqn.2016-06.io.spdk:kvpool-hw1
malloc() { echo "{\"method\":\"bdev_malloc_create\",\"params\":{\"name\":\"$1\",\"num_blocks\":16384,\"block_size\":4096}}"; }
subsystem() {  # nqn bdev serial
  echo "{\"method\":\"nvmf_create_subsystem\",\"params\":{\"nqn\":\"$1\",\"allow_any_host\":true,\"serial_number\":\"$3\"}},"
  echo "{\"method\":\"nvmf_subsystem_add_ns\",\"params\":{\"nqn\":\"$1\",\"namespace\":{\"bdev_name\":\"$2\"}}},"
  echo "{\"method\":\"nvmf_subsystem_add_listener\",\"params\":{\"nqn\":\"$1\",\"listen_address\":{\"trtype\":\"TCP\",\"adrfam\":\"IPv4\",\"traddr\":\"127.0.0.1\",\"trsvcid\":\"$port\"}}}"
}
cat > "$work/nvmf.json" << JSON
{"subsystems": [
 {"subsystem": "bdev", "config": [$(malloc Malloc0), $(malloc Malloc1)]},
 {"subsystem": "nvmf", "config": [
   {"method": "nvmf_create_transport", "params": {"trtype": "TCP"}},
   $(subsystem $nqn0 Malloc0 KVPOOLHW0),
   $(subsystem $nqn1 Malloc1 KVPOOLHW1)]}]}
JSON

mem_args=(--no-huge -s 1024)
if [[ "$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)" -ge 512 ]] && grep -q " hugetlbfs " /proc/mounts; then
  mem_args=(-s 1024)
fi
LD_LIBRARY_PATH="$spdk_dir/lib:${LD_LIBRARY_PATH:-}" "$spdk_dir/bin/nvmf_tgt" -m 0x1 \
  --disable-cpumask-locks "${mem_args[@]}" -r "$work/spdk.sock" --json "$work/nvmf.json" > "$work/nvmf_tgt.log" 2>&1 &
tgt_pid=$!
for _ in $(seq 100); do
  (echo > "/dev/tcp/127.0.0.1/$port") 2> /dev/null && break
  kill -0 "$tgt_pid" 2> /dev/null || break
  sleep 0.1
done
if ! (echo > "/dev/tcp/127.0.0.1/$port") 2> /dev/null; then
  echo "FAILED: nvmf_tgt did not come up on 127.0.0.1:$port"; cat "$work/nvmf_tgt.log"; exit 1
fi
echo "nvmf_tgt (pid $tgt_pid, ${mem_args[*]}) listening on 127.0.0.1:$port: $nqn0, $nqn1"

trid() { echo "trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:$port subnqn:$1"; }
export KVPOOL_TEST_SPDK_TRANSPORT="$(trid $nqn0),$(trid $nqn1)"
export KVPOOL_TEST_TMP="$work"

status=0
run() {  # name, then the command; fails on a failed or skipped test
  local name=$1; shift
  echo "=== $name: $*"
  "$@" 2>&1 | tee "$work/$name.log"
  local rc=${PIPESTATUS[0]}
  if [[ $rc -ne 0 ]] || grep -q "^\[  SKIPPED \]" "$work/$name.log"; then
    echo "=== $name FAILED (exit $rc, or a test skipped)"; status=1
  fi
}
run conformance "$bin_dir/extent_device_test" --gtest_filter='Engines/ExtentPoolTest.*/spdk:SpdkOpenTest.*'
run zero_copy "$bin_dir/extent_zero_copy_test" --gtest_filter='Engines/ZeroCopyTest.*/spdk'
run crash "$bin_dir/crash_test" --gtest_filter='Crash.Spdk*'
# Last: the fault tests pause the target and then kill it.
export KVPOOL_TEST_SPDK_TARGET_PID=$tgt_pid KVPOOL_SPDK_TIMEOUT_MS=1000
run faults "$bin_dir/spdk_device_test" \
  --gtest_filter='SpdkDevice.*:SpdkFaultTest.*-SpdkDevice.WithoutSpdk*'
[[ $status -eq 0 ]] && echo "spdk_nvmf_test: all passed" || cat "$work/nvmf_tgt.log" | tail -20
exit $status
