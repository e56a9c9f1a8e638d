#!/usr/bin/env bash
# Fuzzes kvpool serve's request parsing with libFuzzer (Clang, ASan+UBSan).
# Usage: scripts/fuzz.sh [SECONDS]   (default 60)
# Builds tests/fuzz/api_request_fuzz in build-fuzz/ (Clang, no llama.cpp)
# and runs it on a copy of the seed corpus tests/fuzz/corpus/api_request/,
# so the committed seeds stay as they are. Inputs that crash are written to
# build-fuzz/fuzz-findings/; the exit status is non-zero when there are any.
#   KVPOOL_FUZZ_JOBS=N  runs N fuzzing processes (default 1)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECONDS_TO_RUN="${1:-60}"
BUILD_DIR="$ROOT/build-fuzz"
SEEDS="$ROOT/tests/fuzz/corpus/api_request"

CC=clang CXX=clang++ cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKVPOOL_WITH_LLAMA=OFF -DKVPOOL_SANITIZE=address \
  >/dev/null
ninja -C "$BUILD_DIR" -j "${KVPOOL_JOBS:-$(nproc)}" api_request_fuzz

CORPUS="$BUILD_DIR/fuzz-corpus/api_request"
FINDINGS="$BUILD_DIR/fuzz-findings"
mkdir -p "$CORPUS" "$FINDINGS"
cp -n "$SEEDS"/* "$CORPUS"/

ARGS=(-max_total_time="$SECONDS_TO_RUN" -max_len=4096 -timeout=10 -rss_limit_mb=2048
      -artifact_prefix="$FINDINGS/" -print_final_stats=1)
JOBS="${KVPOOL_FUZZ_JOBS:-1}"
if [[ "$JOBS" -gt 1 ]]; then  # libFuzzer then logs each job to $BUILD_DIR/fuzz-<n>.log
  ARGS+=(-jobs="$JOBS" -workers="$JOBS")
  cd "$BUILD_DIR"
fi

echo "== api_request_fuzz for ${SECONDS_TO_RUN}s (findings: $FINDINGS)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  "$BUILD_DIR/tests/fuzz/api_request_fuzz" "$CORPUS" "${ARGS[@]}"
