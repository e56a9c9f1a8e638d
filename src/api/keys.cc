#include <kvpool/keys.h>

#include <xxhash.h>

#include <cstdio>
#include <cstring>

namespace kvpool {
namespace {

// Domain separation so that namespace ids and chunk keys never collide.
constexpr uint64_t kNamespaceSeed = 0x6b76706f6f6c4e53ull;  // "kvpoolNS"
constexpr uint64_t kChunkSeed = 0x6b76706f6f6c434bull;      // "kvpoolCK"
constexpr uint64_t kPartialSeed = 0x6b76706f6f6c5043ull;    // "kvpoolPC"

ChunkKey FromXXH128(XXH128_hash_t h) { return ChunkKey{h.high64, h.low64}; }

void PutKey(XXH3_state_t* st, const ChunkKey& k) {
  uint64_t words[2] = {k.hi, k.lo};
  XXH3_128bits_update(st, words, sizeof(words));
}

}  // namespace

std::string ChunkKey::ToHex() const {
  char buf[33];
  std::snprintf(buf, sizeof(buf), "%016llx%016llx", static_cast<unsigned long long>(hi),
                static_cast<unsigned long long>(lo));
  return std::string(buf, 32);
}

Result<ChunkKey> ChunkKey::FromHex(std::string_view hex) {
  if (hex.size() != 32) return Status::InvalidArgument("chunk key must be 32 hex digits");
  ChunkKey k;
  for (size_t i = 0; i < 32; ++i) {
    char c = hex[i];
    uint64_t v;
    if (c >= '0' && c <= '9') v = c - '0';
    else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
    else return Status::InvalidArgument("chunk key has a non-hex digit: " + std::string(hex));
    uint64_t& word = i < 16 ? k.hi : k.lo;
    word = (word << 4) | v;
  }
  return k;
}

Namespace Namespace::Make(uint64_t model_fingerprint, std::string_view tenant_salt) {
  XXH3_state_t* st = XXH3_createState();
  XXH3_128bits_reset_withSeed(st, kNamespaceSeed);
  XXH3_128bits_update(st, &model_fingerprint, sizeof(model_fingerprint));
  uint64_t salt_len = tenant_salt.size();
  XXH3_128bits_update(st, &salt_len, sizeof(salt_len));
  XXH3_128bits_update(st, tenant_salt.data(), tenant_salt.size());
  Namespace ns{FromXXH128(XXH3_128bits_digest(st))};
  XXH3_freeState(st);
  return ns;
}

namespace {

// XXH3-128 seeded with `seed` over the parent key, the namespace, the token
// count when `count` is set, and the tokens.
ChunkKey HashChild(uint64_t seed, const Namespace& ns, const ChunkKey& parent, bool count,
                   std::span<const int32_t> tokens) {
  XXH3_state_t* st = XXH3_createState();
  XXH3_128bits_reset_withSeed(st, seed);
  PutKey(st, parent);
  PutKey(st, ns.id);
  const uint64_t n = tokens.size();
  if (count) XXH3_128bits_update(st, &n, sizeof(n));
  XXH3_128bits_update(st, tokens.data(), tokens.size_bytes());
  ChunkKey key = FromXXH128(XXH3_128bits_digest(st));
  XXH3_freeState(st);
  return key;
}

}  // namespace

ChunkKey NextChunkKey(const Namespace& ns, const ChunkKey& parent,
                      std::span<const int32_t> chunk_tokens) {
  return HashChild(kChunkSeed, ns, parent, false, chunk_tokens);
}

ChunkKey PartialChunkKey(const Namespace& ns, const ChunkKey& parent,
                         std::span<const int32_t> tokens) {
  return HashChild(kPartialSeed, ns, parent, true, tokens);
}

std::vector<ChunkKey> ChainChunkKeys(const Namespace& ns, std::span<const int32_t> tokens,
                                     uint32_t chunk_tokens) {
  std::vector<ChunkKey> keys;
  if (chunk_tokens == 0) return keys;
  size_t full = tokens.size() / chunk_tokens;
  keys.reserve(full);
  ChunkKey parent;
  for (size_t i = 0; i < full; ++i) {
    parent = NextChunkKey(ns, parent, tokens.subspan(i * chunk_tokens, chunk_tokens));
    keys.push_back(parent);
  }
  return keys;
}

}  // namespace kvpool
