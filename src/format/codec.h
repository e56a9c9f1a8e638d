// Little-endian field access for on-device structures. Every multi-byte
// integer of the format is little-endian, whatever the host.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include <kvpool/keys.h>

namespace kvpool::format {

inline void Put32(std::byte* base, size_t offset, uint32_t v) {
  for (int i = 0; i < 4; ++i) base[offset + i] = std::byte(v >> (8 * i));
}
inline void Put64(std::byte* base, size_t offset, uint64_t v) {
  for (int i = 0; i < 8; ++i) base[offset + i] = std::byte(v >> (8 * i));
}
inline uint32_t Get32(const std::byte* base, size_t offset) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | std::to_integer<uint32_t>(base[offset + i]);
  return v;
}
inline uint64_t Get64(const std::byte* base, size_t offset) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | std::to_integer<uint64_t>(base[offset + i]);
  return v;
}
inline void PutKey(std::byte* base, size_t offset, const ChunkKey& k) {
  Put64(base, offset, k.hi);
  Put64(base, offset + 8, k.lo);
}
inline ChunkKey GetKey(const std::byte* base, size_t offset) {
  return ChunkKey{Get64(base, offset), Get64(base, offset + 8)};
}
inline void PutMagic(std::byte* base, const char (&magic)[8]) { std::memcpy(base, magic, 8); }
inline bool HasMagic(const std::byte* base, const char (&magic)[8]) {
  return std::memcmp(base, magic, 8) == 0;
}
// Writes `text` NUL-padded into `width` bytes (truncated to width - 1).
inline void PutText(std::byte* base, size_t offset, size_t width, std::string_view text) {
  std::memset(base + offset, 0, width);
  std::memcpy(base + offset, text.data(), std::min(text.size(), width - 1));
}
inline std::string GetText(const std::byte* base, size_t offset, size_t width) {
  const char* p = reinterpret_cast<const char*>(base + offset);
  return std::string(p, strnlen(p, width));
}

}  // namespace kvpool::format
