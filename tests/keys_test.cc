// Chunk keys: chaining over a prefix, namespaces, hex form.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "test_util.h"

namespace kvpool::testing {
namespace {

constexpr uint32_t kChunk = 16;

Namespace DefaultNs() { return Namespace::Make(0x1234abcdull, ""); }

// Keys are part of the on-device format: a pool written by an earlier build
// must be found by this one. These values were computed by the build that
// introduced partial chunks; a change here orphans every stored cache.
TEST(ChunkKeys, KeysOfAFixedInputNeverChange) {
  const std::vector<int32_t> tokens = {1, 2, 3, 4, 5, 6, 7, 8};
  const Namespace ns = Namespace::Make(42, "tenant");
  EXPECT_EQ(ns.id.ToHex(), "d1ce9cc02e07ff98c49c71c90c9b615e");
  const ChunkKey first = NextChunkKey(ns, ChunkKey{}, tokens);
  EXPECT_EQ(first.ToHex(), "672fc45d61b8f6ba2d8c231a94a7ae17");
  EXPECT_EQ(PartialChunkKey(ns, first, std::span(tokens).first(3)).ToHex(), "1b527a8d44ce90a41718ef61327bf583");
}

TEST(ChunkKeys, SameTokensAndNamespaceGiveSameKeys) {
  std::vector<int32_t> tokens = MakeTokens(10 * kChunk, 3);
  auto a = ChainChunkKeys(DefaultNs(), tokens, kChunk);
  auto b = ChainChunkKeys(Namespace::Make(0x1234abcdull, ""), tokens, kChunk);
  ASSERT_EQ(a.size(), 10u);
  EXPECT_EQ(a, b);
  std::set<std::string> distinct;
  for (const ChunkKey& k : a) {
    EXPECT_FALSE(k.IsZero());
    distinct.insert(k.ToHex());
  }
  EXPECT_EQ(distinct.size(), a.size()) << "keys of one prefix must all differ";
}

TEST(ChunkKeys, KeysAreTheChainOfNextChunkKey) {
  std::vector<int32_t> tokens = MakeTokens(5 * kChunk, 4);
  Namespace ns = DefaultNs();
  auto keys = ChainChunkKeys(ns, tokens, kChunk);
  ChunkKey parent;
  for (size_t i = 0; i < keys.size(); ++i) {
    parent = NextChunkKey(ns, parent, std::span(tokens).subspan(i * kChunk, kChunk));
    EXPECT_EQ(keys[i], parent) << "chunk " << i;
  }
}

TEST(ChunkKeys, PartialChunkKeysDifferFromFullOnesAndByLength) {
  std::vector<int32_t> tokens = MakeTokens(2 * kChunk, 6);
  Namespace ns = DefaultNs();
  auto full = ChainChunkKeys(ns, tokens, kChunk);
  const auto second = std::span(tokens).subspan(kChunk);
  // The same tokens as the full chunk, after the same parent: another key.
  EXPECT_NE(PartialChunkKey(ns, full[0], second), full[1]);
  EXPECT_NE(PartialChunkKey(ns, ChunkKey{}, std::span(tokens).first(kChunk)), full[0]);
  std::set<std::string> seen;
  for (size_t n = 1; n < kChunk; ++n) {
    const ChunkKey k = PartialChunkKey(ns, full[0], second.first(n));
    EXPECT_EQ(k, PartialChunkKey(ns, full[0], second.first(n))) << "keys are deterministic";
    seen.insert(k.ToHex());
  }
  EXPECT_EQ(seen.size(), kChunk - 1) << "every length has its own key";
  EXPECT_NE(PartialChunkKey(ns, full[0], second.first(5)),
            PartialChunkKey(ns, ChunkKey{}, second.first(5)))
      << "the parent is part of the key";
  EXPECT_NE(PartialChunkKey(ns, full[0], second.first(5)),
            PartialChunkKey(Namespace::Make(1, "x"), full[0], second.first(5)))
      << "the namespace is part of the key";
}

// Keys of `tokens` under `ns` share no element with the default keys.
void ExpectDisjoint(const std::vector<ChunkKey>& a, const std::vector<ChunkKey>& b) {
  std::set<std::string> seen;
  for (const ChunkKey& k : a) seen.insert(k.ToHex());
  for (const ChunkKey& k : b) EXPECT_EQ(seen.count(k.ToHex()), 0u) << k.ToHex();
}

TEST(ChunkKeys, OtherTenantSaltGivesDisjointKeys) {
  std::vector<int32_t> tokens = MakeTokens(8 * kChunk, 5);
  auto plain = ChainChunkKeys(Namespace::Make(77, ""), tokens, kChunk);
  auto alice = ChainChunkKeys(Namespace::Make(77, "alice"), tokens, kChunk);
  auto bob = ChainChunkKeys(Namespace::Make(77, "bob"), tokens, kChunk);
  EXPECT_NE(Namespace::Make(77, "alice").id, Namespace::Make(77, "bob").id);
  ExpectDisjoint(plain, alice);
  ExpectDisjoint(plain, bob);
  ExpectDisjoint(alice, bob);
}

TEST(ChunkKeys, OtherModelFingerprintGivesDisjointKeys) {
  ModelShape a = *ModelShape::Preset("llama-3.1-8b");
  ModelShape b = *ModelShape::Preset("qwen3-30b-a3b");
  ASSERT_NE(a.Fingerprint(), b.Fingerprint());
  ModelShape c = a;
  c.dtype_bytes = 1;  // same model, FP8 KV: different bytes, different keys
  ASSERT_NE(a.Fingerprint(), c.Fingerprint());
  std::vector<int32_t> tokens = MakeTokens(8 * kChunk, 6);
  auto ka = ChainChunkKeys(Namespace::Make(a.Fingerprint(), ""), tokens, kChunk);
  auto kb = ChainChunkKeys(Namespace::Make(b.Fingerprint(), ""), tokens, kChunk);
  auto kc = ChainChunkKeys(Namespace::Make(c.Fingerprint(), ""), tokens, kChunk);
  ExpectDisjoint(ka, kb);
  ExpectDisjoint(ka, kc);
}

TEST(ChunkKeys, ChangingChunkIChangesKeysFromIOn) {
  const size_t chunks = 8;
  std::vector<int32_t> tokens = MakeTokens(chunks * kChunk, 7);
  auto base = ChainChunkKeys(DefaultNs(), tokens, kChunk);
  for (size_t i = 0; i < chunks; ++i) {
    std::vector<int32_t> changed = tokens;
    changed[i * kChunk + (i % kChunk)] += 1;  // one token of chunk i
    auto keys = ChainChunkKeys(DefaultNs(), changed, kChunk);
    ASSERT_EQ(keys.size(), chunks);
    for (size_t j = 0; j < chunks; ++j) {
      if (j < i) {
        EXPECT_EQ(keys[j], base[j]) << "changed chunk " << i << ", key " << j;
      } else {
        EXPECT_NE(keys[j], base[j]) << "changed chunk " << i << ", key " << j;
      }
    }
  }
}

TEST(ChunkKeys, SameChunkTokensAfterDifferentPrefixGiveDifferentKeys) {
  // Chunk 1 holds equal tokens in both sequences; only chunk 0 differs.
  std::vector<int32_t> a = MakeTokens(2 * kChunk, 8);
  std::vector<int32_t> b = a;
  b[0] += 1;
  auto ka = ChainChunkKeys(DefaultNs(), a, kChunk);
  auto kb = ChainChunkKeys(DefaultNs(), b, kChunk);
  EXPECT_NE(ka[1], kb[1]);
}

TEST(ChunkKeys, PartialTrailingChunkHasNoKey) {
  std::vector<int32_t> tokens = MakeTokens(3 * kChunk + kChunk / 2, 9);
  auto keys = ChainChunkKeys(DefaultNs(), tokens, kChunk);
  ASSERT_EQ(keys.size(), 3u);
  std::vector<int32_t> full(tokens.begin(), tokens.begin() + 3 * kChunk);
  EXPECT_EQ(keys, ChainChunkKeys(DefaultNs(), full, kChunk));
  EXPECT_TRUE(ChainChunkKeys(DefaultNs(), std::span(tokens).first(kChunk - 1), kChunk).empty());
  EXPECT_TRUE(ChainChunkKeys(DefaultNs(), {}, kChunk).empty());
}

TEST(ChunkKeys, HexRoundTrip) {
  auto keys = ChainChunkKeys(DefaultNs(), MakeTokens(20 * kChunk, 10), kChunk);
  keys.push_back(ChunkKey{0, 0});
  keys.push_back(ChunkKey{~0ull, 1});
  keys.push_back(ChunkKey{0x0123456789abcdefull, 0xfedcba9876543210ull});
  for (const ChunkKey& k : keys) {
    std::string hex = k.ToHex();
    ASSERT_EQ(hex.size(), 32u);
    for (char c : hex) EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << hex;
    auto back = ChunkKey::FromHex(hex);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(*back, k);
  }
  EXPECT_EQ((ChunkKey{0x0123456789abcdefull, 0xfedcba9876543210ull}.ToHex()),
            "0123456789abcdeffedcba9876543210");
}

TEST(ChunkKeys, FromHexRejectsMalformedText) {
  for (std::string_view bad :
       {"", "0123", "0123456789abcdeffedcba987654321", "0123456789abcdeffedcba98765432100",
        "0123456789abcdeffedcba987654321g", "0123456789abcdef fedcba987654321"}) {
    auto r = ChunkKey::FromHex(bad);
    EXPECT_FALSE(r.ok()) << "'" << bad << "'";
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    }
  }
}

}  // namespace
}  // namespace kvpool::testing
