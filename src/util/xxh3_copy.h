// A copy that computes XXH3-64 (seed 0, default secret) of the bytes it
// moves from the registers its loads filled, so that verifying a DRAM read
// costs no second pass over the data. util/checksum.cc uses it for large
// payloads on x86-64 CPUs with AVX2 (and AVX-512 where it pays); tests
// compare it with libxxhash.
//
// Why it can follow the copy's order: between two scrambles (one 1 KiB
// block of input), XXH3 only adds to its accumulators, and what a stripe
// adds does not depend on them. Each block's sum is therefore computed
// wherever the copy happens to be, and the sums are folded into the
// accumulators in input order afterwards.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kvpool {

// True when this CPU can run CopyXxh3 (AVX2).
bool CopyXxh3Supported();

// True when CopyXxh3 copies into 64-byte-aligned destinations with its
// 512-bit loop on this CPU (AVX-512 of a generation that keeps its clock);
// other destinations, and other CPUs, take the 256-bit loop. Same results.
bool CopyXxh3Uses512BitLoop();

// Copies `length` bytes from `src` to `dst` (no overlap) with non-temporal
// stores and returns XXH3_64bits(src, length).
// REQUIRES: CopyXxh3Supported(), length > 240, dst 32-byte aligned.
uint64_t CopyXxh3(std::byte* dst, const std::byte* src, size_t length);

}  // namespace kvpool
