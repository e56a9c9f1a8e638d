#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what is missing, builds,
# runs every test, then runs the suite again under ASan+UBSan and the
# concurrent tests under TSan, and fuzzes the parsers of untrusted input
# (HTTP requests, kvpoold's wire protocol, what the cluster returns) for a
# minute each (scripts/fuzz.sh). Exit status is non-zero when anything fails.
#   KVPOOL_SANITIZERS=0   skips the sanitizer builds (quick local runs).
#   KVPOOL_MIN_FREE_GIB   free disk the run needs at its start (default 12;
#                         a run peaks near 9 GiB). Below it the run
#                         stops at once and says so, instead of failing a
#                         test half an hour in with ENOSPC.
# A stage that passed leaves its build (to rerun one test) but not the scratch
# files its tests wrote (BUILD/tests/tmp); a failed stage keeps them.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

free_gib() { df -P -k "$ROOT" | awk 'NR == 2 { printf "%d", $4 / 1048576 }'; }

check_free_disk() {
  local need="${KVPOOL_MIN_FREE_GIB:-12}" have
  have="$(free_gib)"
  echo "== free disk at $ROOT: ${have} GiB (the run needs ${need} GiB)"
  if (( have < need )); then
    echo "test.sh: only ${have} GiB free on the file system of $ROOT; the suite needs" \
         "${need} GiB (builds, sanitizer builds, test scratch). Free space or set" \
         "KVPOOL_MIN_FREE_GIB." >&2
    exit 1
  fi
}

run_suite() {  # build dir, ctest args...
  local dir="$1"; shift
  (cd "$dir" && ctest --output-on-failure --timeout 900 "$@")
  rm -rf "$dir/tests/tmp"
  echo "   stage passed; $(free_gib) GiB free"
}

check_free_disk
"$ROOT/scripts/setup.sh"

echo "== build + tests (RelWithDebInfo)"
"$ROOT/scripts/build.sh" "$ROOT/build"
run_suite "$ROOT/build"

if [[ "${KVPOOL_SANITIZERS:-1}" != "0" ]]; then
  # Line tables are all a sanitizer report needs; full debug info would make
  # each statically linked test binary several times larger.
  SAN_FLAGS=(-DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-g1 -DCMAKE_C_FLAGS_DEBUG=-g1)

  echo "== ASan + UBSan: whole suite"
  "$ROOT/scripts/build.sh" "$ROOT/build-asan" -DKVPOOL_SANITIZE=address "${SAN_FLAGS[@]}"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    run_suite "$ROOT/build-asan" -LE "timing|large"

  echo "== TSan: concurrent parts"
  "$ROOT/scripts/build.sh" "$ROOT/build-tsan" -DKVPOOL_SANITIZE=thread "${SAN_FLAGS[@]}"
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
    run_suite "$ROOT/build-tsan" -L concurrent

  echo "== libFuzzer: parsers of untrusted input (${KVPOOL_FUZZ_SECONDS:-60} s each)"
  "$ROOT/scripts/fuzz.sh" "${KVPOOL_FUZZ_SECONDS:-60}"
fi
echo "== all tests passed"
