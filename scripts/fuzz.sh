#!/usr/bin/env bash
# Fuzzes the parsers of untrusted input with libFuzzer (Clang, ASan+UBSan):
# kvpool serve's HTTP request parsing (api_request_fuzz) and kvpoold's wire
# decoders (wire_fuzz) and what the redis device reads from the cluster
# (remote_fuzz), SECONDS each.
# Usage: scripts/fuzz.sh [SECONDS]   (default 60)
# Builds the targets in build-fuzz/ (Clang, no llama.cpp) and runs each on a
# copy of its seed corpus tests/fuzz/corpus/<name>/, so the committed seeds
# stay as they are. Inputs that crash are written to build-fuzz/fuzz-findings/;
# the exit status is non-zero when there are any.
#   KVPOOL_FUZZ_JOBS=N  runs N fuzzing processes (default 1)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECONDS_TO_RUN="${1:-60}"
BUILD_DIR="$ROOT/build-fuzz"

CC=clang CXX=clang++ cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKVPOOL_WITH_LLAMA=OFF -DKVPOOL_SANITIZE=address \
  >/dev/null
ninja -C "$BUILD_DIR" -j "${KVPOOL_JOBS:-$(nproc)}" api_request_fuzz wire_fuzz remote_fuzz

FINDINGS="$BUILD_DIR/fuzz-findings"
mkdir -p "$FINDINGS"

ARGS=(-max_total_time="$SECONDS_TO_RUN" -max_len=4096 -timeout=10 -rss_limit_mb=2048
      -artifact_prefix="$FINDINGS/" -print_final_stats=1)
JOBS="${KVPOOL_FUZZ_JOBS:-1}"
if [[ "$JOBS" -gt 1 ]]; then  # libFuzzer then logs each job to $BUILD_DIR/fuzz-<n>.log
  ARGS+=(-jobs="$JOBS" -workers="$JOBS")
  cd "$BUILD_DIR"
fi

for target in api_request wire remote; do
  CORPUS="$BUILD_DIR/fuzz-corpus/$target"
  mkdir -p "$CORPUS"
  cp -n "$ROOT/tests/fuzz/corpus/$target"/* "$CORPUS"/
  echo "== ${target}_fuzz for ${SECONDS_TO_RUN}s (findings: $FINDINGS)"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    "$BUILD_DIR/tests/fuzz/${target}_fuzz" "$CORPUS" "${ARGS[@]}"
done
