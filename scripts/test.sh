#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what is missing, builds,
# runs every test, then runs the suite again under ASan+UBSan and the
# concurrent tests under TSan, and fuzzes the parsers of untrusted input
# (HTTP requests, kvpoold's wire protocol, what the cluster returns) for a
# minute each (scripts/fuzz.sh). Exit status is non-zero when anything fails.
#   KVPOOL_SANITIZERS=0 skips the sanitizer builds (quick local runs).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"

run_suite() {  # build dir, ctest args...
  local dir="$1"; shift
  (cd "$dir" && ctest --output-on-failure --timeout 900 "$@")
}

echo "== build + tests (RelWithDebInfo)"
"$ROOT/scripts/build.sh" "$ROOT/build"
run_suite "$ROOT/build"

if [[ "${KVPOOL_SANITIZERS:-1}" != "0" ]]; then
  echo "== ASan + UBSan: whole suite"
  "$ROOT/scripts/build.sh" "$ROOT/build-asan" -DKVPOOL_SANITIZE=address -DCMAKE_BUILD_TYPE=Debug
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    run_suite "$ROOT/build-asan" -LE "timing|large"

  echo "== TSan: concurrent parts"
  "$ROOT/scripts/build.sh" "$ROOT/build-tsan" -DKVPOOL_SANITIZE=thread -DCMAKE_BUILD_TYPE=Debug
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
    run_suite "$ROOT/build-tsan" -L concurrent

  echo "== libFuzzer: parsers of untrusted input (${KVPOOL_FUZZ_SECONDS:-60} s each)"
  "$ROOT/scripts/fuzz.sh" "${KVPOOL_FUZZ_SECONDS:-60}"
fi
echo "== all tests passed"
