// ModelShape::Validate computes segment and per-token sizes with overflow
// checks: a shape whose product would wrap (to a 0-byte segment) is
// InvalidArgument naming the field, and a pool with it is refused, not run.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

#include "test_util.h"

namespace kvpool::testing {
namespace {

ModelShape Shape(uint32_t layers, uint32_t kv_heads, uint32_t head_dim, uint32_t dtype_bytes,
                 uint32_t chunk_tokens) {
  ModelShape s;
  s.layers = layers;
  s.kv_heads = kv_heads;
  s.head_dim = head_dim;
  s.dtype_bytes = dtype_bytes;
  s.chunk_tokens = chunk_tokens;
  return s;
}

void ExpectNames(const Status& s, const std::string& field) {
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find(field), std::string::npos)
      << "message does not name '" << field << "': " << s.message();
}

// 2 x 1 x 2^31 x 2^31 x 2 = 2^64: wraps to exactly 0 in 64 bits.
ModelShape WrapsToZero() { return Shape(1, 1u << 31, 1u << 31, 2, 1); }

TEST(ModelShape, ProductThatWrapsToZeroIsInvalid) {
  ModelShape s = WrapsToZero();
  ExpectNames(s.Validate(), "shape.");
  ExpectNames(s.Validate(), "shape.head_dim");  // the first factor past 1 GiB
  EXPECT_EQ(s.SegmentPayloadBytes(), std::numeric_limits<size_t>::max()) << "saturates, not wraps";
  EXPECT_EQ(s.SegmentBytes(), std::numeric_limits<size_t>::max());
}

TEST(ModelShape, EachFactorPastTheSegmentLimitIsNamed) {
  ExpectNames(Shape(1, 1, 1u << 30, 1, 1).Validate(), "shape.head_dim");
  ExpectNames(Shape(1, 1u << 30, 1, 1, 1).Validate(), "shape.kv_heads");
  ExpectNames(Shape(1, 1, 1, 1, 1u << 30).Validate(), "shape.chunk_tokens");
  ExpectNames(Shape(1, 8, 128, 2, 1u << 20).Validate(), "shape.chunk_tokens");
  // Every factor near 2^32: the 64-bit product would wrap several times.
  ExpectNames(Shape(1, UINT32_MAX, UINT32_MAX, 8, UINT32_MAX).Validate(), "shape.");
  // 2^32 x 2^32 x 2 x ... = 2^66 for chunk_tokens x kv_heads x head_dim; wraps to 0.
  ExpectNames(Shape(1, 1u << 16, 1u << 16, 1, 1u << 31).Validate(), "shape.");
}

TEST(ModelShape, LargestValidSegmentIsAccepted) {
  // Exactly 1 GiB: 2 x 2^12 x 8 x 2^13 x 2.
  ModelShape s = Shape(4096, 8, 1u << 13, 2, 1u << 12);
  ASSERT_TRUE(s.Validate().ok()) << s.Validate().ToString();
  EXPECT_EQ(s.SegmentPayloadBytes(), size_t{1} << 30);
  EXPECT_EQ(s.BytesPerToken(), size_t{2} * 4096 * 8 * (1u << 13) * 2);
  ExpectNames(Shape(1, 8, 1u << 13, 2, (1u << 12) + 1).Validate(), "shape.chunk_tokens");
}

TEST(ModelShape, PresetsKeepTheirSizes) {
  ModelShape s = *ModelShape::Preset("llama-3.1-8b");
  ASSERT_TRUE(s.Validate().ok());
  EXPECT_EQ(s.SegmentPayloadBytes(), size_t{2} * 256 * 8 * 128 * 2);
  EXPECT_EQ(s.BytesPerToken(), size_t{2} * 32 * 8 * 128 * 2);
}

TEST(ModelShape, PoolOptionsAndPoolOpenRefuseAnOverflowingShape) {
  PoolOptions o;
  o.shape = WrapsToZero();
  o.devices.push_back(DramOptions("dram0", 1 << 20));
  ExpectNames(o.Validate(), "shape.");
  auto pool = Pool::Open(o);  // used to divide by a 0-byte segment in the DRAM device
  ASSERT_FALSE(pool.ok());
  ExpectNames(pool.status(), "shape.");
}

}  // namespace
}  // namespace kvpool::testing
