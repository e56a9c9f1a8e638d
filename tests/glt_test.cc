// The global lookup table stays small: at most 64 bytes per segment for a
// 32-layer model.
#include <gtest/gtest.h>

#include <iostream>

#include "pool_helpers.h"

namespace kvpool::testing {
namespace {

TEST(Glt, AtMost64BytesPerSegmentForLlama8bShape) {
  // llama-3.1-8b has 32 layers; shrink head_dim so that 256 chunks fit in a
  // small DRAM region. Table memory depends on the layer count, not on KV size.
  ModelShape shape = *ModelShape::Preset("llama-3.1-8b")->Scaled(1.0 / 128);
  ASSERT_EQ(shape.layers, 32u);
  constexpr size_t kPrefixes = 4, kChunksEach = 64;
  PoolOptions o;
  o.shape = shape;
  o.high_watermark = 1.0;  // keep every chunk: no eviction in this test
  o.low_watermark = 0.99;
  o.devices.push_back(
      DramOptions("dram", kPrefixes * kChunksEach * shape.layers * shape.SegmentBytes()));
  auto pool = MakePool(o);
  ASSERT_NE(pool, nullptr);
  for (size_t p = 0; p < kPrefixes; ++p) {
    auto keys = MakeKeys(shape, kChunksEach, 10 + p);
    KvData data(shape, kChunksEach, 20 + p);
    auto stored = OffloadSync(*pool, keys, data.ConstView());
    ASSERT_TRUE(stored.ok()) << stored.status().ToString();
    ASSERT_EQ(*stored, kChunksEach);
  }
  PoolStats s = pool->Stats();
  ASSERT_EQ(s.chunks, kPrefixes * kChunksEach);
  ASSERT_EQ(s.segments, kPrefixes * kChunksEach * shape.layers);
  std::cout << "GLT: " << s.glt_bytes << " bytes for " << s.segments
            << " segments = " << s.glt_bytes_per_segment << " bytes/segment\n";
  EXPECT_LE(s.glt_bytes_per_segment, 64.0);
  // At least the 16-byte location of every segment: the estimate is not empty.
  EXPECT_GE(s.glt_bytes_per_segment, double(sizeof(SegmentLoc)));
  EXPECT_DOUBLE_EQ(s.glt_bytes_per_segment, double(s.glt_bytes) / double(s.segments));
}

TEST(Glt, TableMemoryShrinksWithRemovals) {
  ModelShape shape = *ModelShape::Preset("tiny");
  PoolOptions o;
  o.shape = shape;
  o.devices.push_back(DramOptions("dram", 64 * shape.layers * shape.SegmentBytes()));
  auto pool = MakePool(o);
  ASSERT_NE(pool, nullptr);
  auto keys = MakeKeys(shape, 40, 1);
  KvData data(shape, 40, 2);
  ASSERT_EQ(*OffloadSync(*pool, keys, data.ConstView()), 40u);
  uint64_t full = pool->Stats().glt_bytes;
  EXPECT_GT(full, 0u);
  pool->Remove(std::span(keys).subspan(20));
  // Half the records; the child counts lose one entry more than half (the
  // new last chunk has no child).
  EXPECT_NEAR(double(pool->Stats().glt_bytes), double(full) / 2, 64);
  pool->Remove(keys);
  EXPECT_EQ(pool->Stats().glt_bytes, 0u);
  EXPECT_EQ(pool->Stats().glt_bytes_per_segment, 0.0);
}

}  // namespace
}  // namespace kvpool::testing
