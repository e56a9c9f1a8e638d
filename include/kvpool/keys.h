// kvpool/keys.h: chunk keys chained over a prefix, and tenant namespaces.
//
// key_0 = H(namespace, tokens of chunk 0)
// key_i = H(key_{i-1}, namespace, tokens of chunk i)
// H is the 128-bit XXH3 hash. Equal token prefixes in the same namespace give
// equal keys; a different model fingerprint or tenant salt gives a different
// namespace and therefore disjoint keys. Keys are part of the on-device
// format: the chaining rule never changes within a format version.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <kvpool/result.h>

namespace kvpool {

struct ChunkKey {
  uint64_t hi = 0;
  uint64_t lo = 0;

  bool operator==(const ChunkKey&) const = default;
  bool IsZero() const { return hi == 0 && lo == 0; }
  // 32 lower-case hex digits, hi first.
  std::string ToHex() const;
  static Result<ChunkKey> FromHex(std::string_view hex);
};

struct ChunkKeyHash {
  size_t operator()(const ChunkKey& k) const noexcept { return static_cast<size_t>(k.lo ^ (k.hi * 0x9e3779b97f4a7c15ull)); }
};

// The namespace of one (model, KV layout, tenant) combination.
struct Namespace {
  ChunkKey id;

  // `model_fingerprint` identifies the model weights and KV dtype/layout (for
  // example ModelShape::Fingerprint() mixed with a hash of the model file);
  // `tenant_salt` isolates tenants ("" for a single tenant).
  static Namespace Make(uint64_t model_fingerprint, std::string_view tenant_salt);
};

// Keys of every *full* chunk of `tokens` (a trailing partial chunk has no key).
// REQUIRES: chunk_tokens > 0.
std::vector<ChunkKey> ChainChunkKeys(const Namespace& ns, std::span<const int32_t> tokens,
                                     uint32_t chunk_tokens);

// One step of the chain: the key of a chunk whose parent is `parent` (a zero
// key for the first chunk).
ChunkKey NextChunkKey(const Namespace& ns, const ChunkKey& parent,
                      std::span<const int32_t> chunk_tokens);

// The key of a *partial* chunk: the `tokens` (fewer than a chunk) that follow
// the full chunk `parent` (a zero key at the start of a prompt). Hashed in
// its own domain, so it never equals a full chunk's key, and over the tokens'
// count and values, so partial chunks of different lengths never share one.
// A partial chunk is a leaf: nothing chains from it.
ChunkKey PartialChunkKey(const Namespace& ns, const ChunkKey& parent,
                         std::span<const int32_t> tokens);

}  // namespace kvpool
