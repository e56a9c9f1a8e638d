// The redis device's value formats (src/tier/redis/remote_format.h): what a
// reader accepts, and that every kind of damage is refused by name.
#include <gtest/gtest.h>

#include <string>

#include "tier/redis/remote_format.h"

namespace kvpool::redis {
namespace {

constexpr ChunkKey kKey{11, 22};
constexpr ChunkKey kParent{33, 44};

std::string SegmentValue(const std::string& payload, uint64_t checksum = 7) {
  return EncodeSegmentHeader(kKey, 5, static_cast<uint32_t>(payload.size()), checksum) + payload;
}

TEST(RemoteFormat, SegmentRoundTrip) {
  const std::string v = SegmentValue("abcdefgh");
  auto p = ParseSegmentValue(v, kKey, 5, 8, 7);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(p->data()), p->size()), "abcdefgh");
}

TEST(RemoteFormat, SegmentDamageIsRefused) {
  const std::string v = SegmentValue("abcdefgh");
  EXPECT_EQ(ParseSegmentValue(v.substr(0, 20), kKey, 5, 8, 7).status().code(), StatusCode::kCorruption);
  EXPECT_NE(ParseSegmentValue(v, kKey, 6, 8, 7).status().message().find("another chunk or layer"),
            std::string::npos);
  EXPECT_FALSE(ParseSegmentValue(v, ChunkKey{1, 2}, 5, 8, 7).ok());
  EXPECT_NE(ParseSegmentValue(v, kKey, 5, 8, 8).status().message().find("differs from its chunk record"),
            std::string::npos);
  EXPECT_FALSE(ParseSegmentValue(v + "x", kKey, 5, 8, 7).ok());  // payload longer than stated
  EXPECT_FALSE(ParseSegmentValue(v, kKey, 5, 9, 7).ok());
  for (size_t i = 0; i < kSegmentHeaderBytes; ++i) {
    std::string bad = v;
    bad[i] = static_cast<char>(bad[i] ^ 0x10);
    EXPECT_FALSE(ParseSegmentValue(bad, kKey, 5, 8, 7).ok()) << "flipped header byte " << i;
  }
}

TEST(RemoteFormat, RecordRoundTripAndDamage) {
  RemoteChunk c{kKey, kParent, {1, 2, 3}};
  const std::string v = EncodeChunkRecord(c, 4096);
  auto r = ParseChunkRecord(v, kKey, 3, 4096);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->parent, kParent);
  EXPECT_EQ(r->checksums, (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_NE(ParseChunkRecord(v, kKey, 4, 4096).status().message().find("this pool has 4"),
            std::string::npos);
  EXPECT_FALSE(ParseChunkRecord(v, kKey, 3, 8192).ok());
  EXPECT_FALSE(ParseChunkRecord(v, kParent, 3, 4096).ok());
  EXPECT_FALSE(ParseChunkRecord(v.substr(0, v.size() - 1), kKey, 3, 4096).ok());
  for (size_t i = 0; i < v.size(); ++i) {
    std::string bad = v;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    EXPECT_FALSE(ParseChunkRecord(bad, kKey, 3, 4096).ok()) << "flipped byte " << i;
  }
}

}  // namespace
}  // namespace kvpool::redis
