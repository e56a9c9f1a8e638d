#include "util/checksum.h"

#include "util/xxh3_copy.h"

#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack
#include <xxhash.h>
// libxxhash's runtime dispatch: XXH3_64bits and XXH3_64bits_update become
// their _dispatch forms, which pick the widest vector unit the CPU has
// (SSE2, AVX2, AVX-512) on first use. The hash values are the same on every
// path; only the speed differs (in cache, 15 GiB/s on SSE2 and 72 on
// AVX-512 on the project's test machine), which decides whether a DRAM read
// is bound by the copy or by its verification. Other architectures keep the
// library's compile-time choice (NEON on arm64).
#if defined(__x86_64__) && __has_include(<xxh_x86dispatch.h>)
#include <xxh_x86dispatch.h>
#endif

#if defined(__x86_64__)
#include <emmintrin.h>  // SSE2: baseline on x86-64, no dispatch needed
#endif

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace kvpool {
namespace {

// Small enough that a piece of source and destination stay in L1/L2 between
// the copy and the hash.
constexpr size_t kPieceBytes = 32 << 10;

// Copies in pieces of kPieceBytes, each hashed from `dst` while it is in cache.
uint64_t CopyThenHashPieces(std::byte* d, const std::byte* s, size_t length) {
  if (length <= kPieceBytes) {
    if (length > 0) std::memcpy(d, s, length);
    return XXH3_64bits(d, length);
  }
  XXH3_state_t state;
  XXH3_INITSTATE(&state);
  XXH3_64bits_reset(&state);
  for (size_t off = 0; off < length; off += kPieceBytes) {
    const size_t n = std::min(kPieceBytes, length - off);
    std::memcpy(d + off, s + off, n);
    XXH3_64bits_update(&state, d + off, n);
  }
  return XXH3_64bits_digest(&state);
}

#if defined(__x86_64__)

// Streaming copies pay off once a payload is larger than what the reader
// would still find in its caches; below this the plain path is used.
constexpr size_t kStreamMinBytes = 64 << 10;
// One block: four 4 KiB pages read side by side, so that four hardware
// prefetch streams run at once (a single stream leaves a core at about
// half its memory bandwidth), and small enough to stay in L1 for the hash.
constexpr size_t kPageBytes = 4096;
constexpr size_t kBlockPages = 4;
constexpr size_t kBlockBytes = kPageBytes * kBlockPages;
constexpr size_t kLineBytes = 64;

// Copies one kBlockBytes block with non-temporal stores: the destination
// is written without first being read into the cache (a plain copy reads
// every destination line before writing it, a third pass over memory).
// SSE2 is enough: the copy is bound by memory, not by vector width (AVX2
// measured no faster in the pool's reads). REQUIRES: d is 16-byte aligned.
void StreamBlock(std::byte* d, const std::byte* s) {
  for (size_t line = 0; line < kPageBytes; line += kLineBytes) {
    __m128i v[kBlockPages][4];
    for (size_t p = 0; p < kBlockPages; ++p) {
      const auto* src = reinterpret_cast<const __m128i*>(s + p * kPageBytes + line);
      for (size_t q = 0; q < 4; ++q) v[p][q] = _mm_loadu_si128(src + q);
    }
    for (size_t p = 0; p < kBlockPages; ++p) {
      auto* dst = reinterpret_cast<__m128i*>(d + p * kPageBytes + line);
      for (size_t q = 0; q < 4; ++q) _mm_stream_si128(dst + q, v[p][q]);
    }
  }
}

// The large-payload path: whole blocks are streamed to `d` and then hashed
// from `s`, whose lines the copy just brought into L1; the unaligned head
// and the tail go through memcpy. Memory is crossed once for reading and
// once for writing.
uint64_t StreamAndHash(std::byte* d, const std::byte* s, size_t length) {
  XXH3_state_t state;
  XXH3_INITSTATE(&state);
  XXH3_64bits_reset(&state);
  const size_t head = (16 - reinterpret_cast<uintptr_t>(d) % 16) % 16;
  std::memcpy(d, s, head);
  XXH3_64bits_update(&state, s, head);
  size_t off = head;
  for (; off + kBlockBytes <= length; off += kBlockBytes) {
    StreamBlock(d + off, s + off);
    XXH3_64bits_update(&state, s + off, kBlockBytes);
  }
  _mm_sfence();  // the streamed stores are ordered before the caller's next ones
  std::memcpy(d + off, s + off, length - off);
  XXH3_64bits_update(&state, s + off, length - off);
  return XXH3_64bits_digest(&state);
}

#endif  // __x86_64__

}  // namespace

uint64_t Checksum64(const void* data, size_t length) { return XXH3_64bits(data, length); }

uint64_t CopyWithChecksum(void* dst, const void* src, size_t length) {
  auto* d = static_cast<std::byte*>(dst);
  const auto* s = static_cast<const std::byte*>(src);
#if defined(__x86_64__)
  if (length >= kStreamMinBytes) {
    static const bool fused = CopyXxh3Supported();
    if (fused && reinterpret_cast<uintptr_t>(d) % 32 == 0) return CopyXxh3(d, s, length);
    return StreamAndHash(d, s, length);
  }
#endif
  return CopyThenHashPieces(d, s, length);
}

}  // namespace kvpool
