#include "util/checksum.h"

#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack
#include <xxhash.h>

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
