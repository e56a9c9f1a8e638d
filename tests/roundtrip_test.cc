// Byte-exact offload/retrieve round trips over a pool mixing DRAM regions and
// file-per-chunk directories, for many model shapes; partial prefixes,
// duplicates, removal and misses.
#include <gtest/gtest.h>

#include <cstring>
#include <iterator>
#include <random>
#include <sstream>

#include "pool_helpers.h"

namespace kvpool::testing {
namespace {

struct Case {
  ModelShape shape;
  size_t chunks = 0;
  std::vector<double> bandwidth;  // per device: dram0, file1, dram2, file3
};

std::string Describe(const Case& c) {
  std::ostringstream s;
  s << "layers=" << c.shape.layers << " kv_heads=" << c.shape.kv_heads
    << " head_dim=" << c.shape.head_dim << " dtype_bytes=" << c.shape.dtype_bytes
    << " chunk_tokens=" << c.shape.chunk_tokens << " chunks=" << c.chunks << " bw=";
  for (double b : c.bandwidth) s << b << ",";
  return s.str();
}

Case RandomCase(std::mt19937_64& rng) {
  static constexpr uint32_t kDims[] = {8, 16, 24, 64, 100, 128};
  static constexpr uint32_t kTokens[] = {1, 3, 16, 32, 64, 256};
  static constexpr uint32_t kDtype[] = {1, 2, 4};
  Case c;
  c.shape.name = "random";
  c.shape.layers = 1 + rng() % 12;
  c.shape.kv_heads = 1 + rng() % 4;
  c.shape.head_dim = kDims[rng() % std::size(kDims)];
  c.shape.dtype_bytes = kDtype[rng() % std::size(kDtype)];
  c.shape.chunk_tokens = kTokens[rng() % std::size(kTokens)];
  while (c.shape.SegmentPayloadBytes() > (256u << 10)) c.shape.chunk_tokens /= 2;
  c.chunks = 1 + rng() % 20;
  for (int d = 0; d < 4; ++d) c.bandwidth.push_back(0.5 + double(rng() % 8));
  return c;
}

// Four devices, each able to hold every segment of `chunks` chunks twice.
// Partition mode unless told otherwise: these tests check the split over
// every kind of device (copies mode has its own tests in copies_test.cc).
PoolOptions MixedOptions(const ModelShape& shape, size_t chunks, const std::vector<double>& bw,
                         const std::string& dir,
                         PlacementMode placement = PlacementMode::kPartition) {
  PoolOptions o;
  o.shape = shape;
  o.placement = placement;
  uint64_t capacity = 2 * shape.SegmentBytes() * shape.layers * std::max<size_t>(chunks, 1);
  o.devices.push_back(DramOptions("dram0", capacity, bw[0]));
  o.devices.push_back(FileOptions("file1", dir + "/file1", capacity, bw[1]));
  o.devices.push_back(DramOptions("dram2", capacity, bw[2]));
  o.devices.push_back(FileOptions("file3", dir + "/file3", capacity, bw[3]));
  return o;
}

TEST(RoundTrip, RandomShapesAreByteExactAcrossDramAndFiles) {
  std::mt19937_64 rng(2024);
  for (int iter = 0; iter < 30; ++iter) {
    Case c = RandomCase(rng);
    SCOPED_TRACE(Describe(c));
    TempDir dir;
    // Odd iterations in copies mode: files are home, DRAM regions hold copies.
    const PlacementMode mode = iter % 2 ? PlacementMode::kCopies : PlacementMode::kPartition;
    auto pool = MakePool(MixedOptions(c.shape, c.chunks, c.bandwidth, dir.path(), mode));
    ASSERT_NE(pool, nullptr);
    auto keys = MakeKeys(c.shape, c.chunks, 100 + iter);
    KvData src(c.shape, c.chunks, 200 + iter);
    auto stored = OffloadSync(*pool, keys, src.ConstView());
    ASSERT_TRUE(stored.ok()) << stored.status().ToString();
    EXPECT_EQ(*stored, c.chunks);
    EXPECT_EQ(pool->Lookup(keys), c.chunks);

    KvData dst(c.shape, c.chunks);
    RetrieveOutcome r = RetrieveSync(*pool, keys, dst);
    ASSERT_TRUE(r.valid.ok()) << r.valid.status().ToString();
    EXPECT_EQ(*r.valid, c.chunks);
    EXPECT_TRUE(dst.SameAs(src, c.chunks));
    ExpectWellOrderedLayers(r, c.shape.layers);

    PoolStats s = pool->Stats();
    EXPECT_EQ(s.chunks, c.chunks);
    EXPECT_EQ(s.segments, c.chunks * c.shape.layers);
    uint64_t read = 0, home_written = 0;
    for (const DeviceStats& d : s.devices) {
      read += d.bytes_read;
      if (d.role == "home") home_written += d.bytes_written;
      EXPECT_EQ(d.role, mode == PlacementMode::kCopies && d.kind == "dram" ? "cache" : "home");
      EXPECT_EQ(d.errors, 0u) << d.name;
    }
    // Every segment stored once at home, and read once from one of its copies.
    const uint64_t bytes = c.chunks * c.shape.layers * c.shape.SegmentPayloadBytes();
    EXPECT_EQ(home_written, bytes);
    EXPECT_EQ(read, bytes);
  }
}

TEST(RoundTrip, EveryDeviceKindHoldsPartOfABigEnoughBatch) {
  ModelShape shape = *ModelShape::Preset("tiny");
  TempDir dir;
  auto pool = MakePool(MixedOptions(shape, 16, {1, 1, 2, 4}, dir.path()));
  ASSERT_NE(pool, nullptr);
  auto keys = MakeKeys(shape, 16, 1);
  KvData src(shape, 16, 2);
  ASSERT_EQ(*OffloadSync(*pool, keys, src.ConstView()), 16u);
  PoolStats s = pool->Stats();
  // 64 segments split 1:1:2:4 -> 8, 8, 16, 32.
  ASSERT_EQ(s.devices.size(), 4u);
  EXPECT_EQ(s.devices[0].segments, 8u);
  EXPECT_EQ(s.devices[1].segments, 8u);
  EXPECT_EQ(s.devices[2].segments, 16u);
  EXPECT_EQ(s.devices[3].segments, 32u);
  EXPECT_EQ(s.devices[1].kind, "file");
  KvData dst(shape, 16);
  RetrieveOutcome r = RetrieveSync(*pool, keys, dst);
  ASSERT_EQ(*r.valid, 16u);
  EXPECT_TRUE(dst.SameAs(src, 16));
}

TEST(RoundTrip, StridedBuffersAreAddressedBySegment) {
  // Caller buffers with padding between chunks: chunk_stride > payload.
  ModelShape shape = *ModelShape::Preset("tiny");
  TempDir dir;
  auto pool = MakePool(MixedOptions(shape, 6, {1, 1, 1, 1}, dir.path()));
  ASSERT_NE(pool, nullptr);
  const size_t chunks = 6, payload = shape.SegmentPayloadBytes(), stride = payload + 96;
  std::mt19937_64 rng(5);
  std::vector<std::vector<std::byte>> src(shape.layers, std::vector<std::byte>(chunks * stride));
  for (auto& l : src) {
    for (auto& b : l) b = std::byte(rng());
  }
  ConstKvBuffer in;
  for (auto& l : src) in.layer_base.push_back(l.data());
  in.chunk_stride = stride;
  auto keys = MakeKeys(shape, chunks, 3);
  ASSERT_EQ(*OffloadSync(*pool, keys, in), chunks);

  const std::byte kCanary{0x5a};
  std::vector<std::vector<std::byte>> dst(shape.layers,
                                          std::vector<std::byte>(chunks * stride, kCanary));
  KvBuffer out;
  for (auto& l : dst) out.layer_base.push_back(l.data());
  out.chunk_stride = stride;
  auto h = pool->Retrieve(keys, out, nullptr);
  ASSERT_TRUE(h.ok());
  ASSERT_EQ(*h->Wait(), chunks);
  for (uint32_t l = 0; l < shape.layers; ++l) {
    for (size_t c = 0; c < chunks; ++c) {
      EXPECT_EQ(std::memcmp(dst[l].data() + c * stride, src[l].data() + c * stride, payload), 0)
          << "layer " << l << " chunk " << c;
      for (size_t i = payload; i < stride; ++i) {
        ASSERT_EQ(dst[l][c * stride + i], kCanary) << "padding overwritten";
      }
    }
  }
}

class PartialPrefixTest : public ::testing::Test {
 protected:
  static constexpr size_t kChunks = 12;

  void SetUp() override {
    shape_ = *ModelShape::Preset("tiny");
    shape_.chunk_tokens = 32;
    pool_ = MakePool(MixedOptions(shape_, kChunks, {1, 2, 3, 1}, dir_.path()));
    ASSERT_NE(pool_, nullptr);
    keys_ = MakeKeys(shape_, kChunks, 9);
  }

  // Retrieves every key; checks the layer callbacks and the bytes of the
  // valid chunks. Returns the valid count.
  size_t RetrieveAndCheck() {
    KvData dst(shape_, kChunks);
    RetrieveOutcome r = RetrieveSync(*pool_, keys_, dst);
    EXPECT_TRUE(r.valid.ok()) << r.valid.status().ToString();
    if (!r.valid.ok()) return 0;
    ExpectWellOrderedLayers(r, shape_.layers);
    EXPECT_TRUE(dst.SameAs(src_, *r.valid));
    return *r.valid;
  }

  TempDir dir_;
  ModelShape shape_;
  std::unique_ptr<PoolImpl> pool_;
  std::vector<ChunkKey> keys_;
  KvData src_{*ModelShape::Preset("tiny"), 0};
};

TEST_F(PartialPrefixTest, OffloadFromFirstChunkExtendsACachedPrefix) {
  src_ = KvData(shape_, kChunks, 10);
  // Cache chunks [0, 4), then [4, 9) from a buffer that starts at chunk 4.
  auto first = OffloadSync(*pool_, std::span(keys_).first(4), src_.ConstView());
  ASSERT_EQ(*first, 4u);
  EXPECT_EQ(pool_->Lookup(keys_), 4u) << "a longer chain reports the cached length";
  EXPECT_EQ(RetrieveAndCheck(), 4u);

  auto second = OffloadSync(*pool_, std::span(keys_).first(9), ViewFrom(src_, 4));
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(*second, 5u);
  EXPECT_EQ(pool_->Lookup(keys_), 9u);
  EXPECT_EQ(pool_->Lookup(std::span(keys_).first(6)), 6u);
  EXPECT_EQ(RetrieveAndCheck(), 9u);
  EXPECT_EQ(pool_->Stats().chunks, 9u);
}

TEST_F(PartialPrefixTest, OffloadingAPresentPrefixStoresNothingNew) {
  src_ = KvData(shape_, kChunks, 11);
  ASSERT_EQ(*OffloadSync(*pool_, std::span(keys_).first(7), src_.ConstView()), 7u);
  uint64_t written = 0;
  for (const auto& d : pool_->Stats().devices) written += d.writes;
  auto again = OffloadSync(*pool_, std::span(keys_).first(7), src_.ConstView());
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(*again, 0u);
  uint64_t written_after = 0;
  for (const auto& d : pool_->Stats().devices) written_after += d.writes;
  EXPECT_EQ(written_after, written) << "present chunks must not be rewritten";
  // Overlapping: chunks [0, 7) present, [7, 12) new.
  auto overlap = OffloadSync(*pool_, keys_, src_.ConstView());
  ASSERT_TRUE(overlap.ok());
  EXPECT_EQ(*overlap, 5u);
  EXPECT_EQ(RetrieveAndCheck(), kChunks);
}

// A leaf (for example a partial chunk) hangs from the prefix it was stored
// after; FindChild finds it among guessed keys in one query.
TEST_F(PartialPrefixTest, FindChildFindsTheFirstPresentLeafOfItsParent) {
  src_ = KvData(shape_, kChunks, 13);
  ASSERT_EQ(*OffloadSync(*pool_, std::span(keys_).first(3), src_.ConstView()), 3u);
  const std::vector<ChunkKey> with_leaf = {keys_[0], keys_[1], keys_[2], keys_[7]};
  ASSERT_EQ(*OffloadSync(*pool_, with_leaf, ViewFrom(src_, 3)), 1u);
  const std::span<const ChunkKey> prefix = std::span(keys_).first(3);
  const uint64_t lookups = pool_->Stats().lookups;
  EXPECT_EQ(pool_->FindChild(prefix, std::vector{keys_[9], keys_[7], keys_[8]}), 1u);
  EXPECT_EQ(pool_->Stats().lookups, lookups + 1) << "one query";
  EXPECT_EQ(pool_->FindChild(prefix, std::vector{keys_[9], keys_[8]}), 2u)
      << "none present: the candidates' count";
  EXPECT_EQ(pool_->FindChild(prefix.first(2), std::vector{keys_[7]}), 1u)
      << "present, but another chunk's child";
  EXPECT_EQ(pool_->FindChild(prefix.first(2), std::vector{keys_[7], keys_[2]}), 1u)
      << "a full chunk is its parent's child too";
  EXPECT_EQ(pool_->FindChild({}, std::vector{keys_[1], keys_[0]}), 1u) << "chunk 0 has no parent";
  EXPECT_EQ(pool_->FindChild(prefix, {}), 0u);
}

TEST_F(PartialPrefixTest, RemoveDropsChunksAndFreesTheirSpace) {
  src_ = KvData(shape_, kChunks, 12);
  ASSERT_EQ(*OffloadSync(*pool_, keys_, src_.ConstView()), kChunks);
  EXPECT_EQ(pool_->Remove(std::span(keys_).subspan(8)), 4u);
  EXPECT_EQ(pool_->Remove(std::span(keys_).subspan(8)), 0u) << "already removed";
  EXPECT_EQ(pool_->Lookup(keys_), 8u);
  EXPECT_EQ(RetrieveAndCheck(), 8u);
  PoolStats s = pool_->Stats();
  EXPECT_EQ(s.chunks, 8u);
  EXPECT_EQ(s.segments, 8u * shape_.layers);
  // Removing a middle chunk ends the usable prefix there.
  EXPECT_EQ(pool_->Remove(std::span(keys_).subspan(3, 1)), 1u);
  EXPECT_EQ(pool_->Lookup(keys_), 3u);
  EXPECT_EQ(RetrieveAndCheck(), 3u);
  EXPECT_EQ(pool_->Remove(keys_), 7u);
  s = pool_->Stats();
  EXPECT_EQ(s.chunks, 0u);
  EXPECT_EQ(s.segments, 0u);
  for (const auto& d : s.devices) EXPECT_EQ(d.used_bytes, 0u) << d.name;
  // The space is reusable: everything fits again.
  ASSERT_EQ(*OffloadSync(*pool_, keys_, src_.ConstView()), kChunks);
  EXPECT_EQ(RetrieveAndCheck(), kChunks);
}

TEST_F(PartialPrefixTest, RetrieveOfAnAbsentPrefixReturnsZeroAndAnnouncesEveryLayer) {
  src_ = KvData(shape_, kChunks, 13);
  EXPECT_EQ(pool_->Lookup(keys_), 0u);
  EXPECT_EQ(RetrieveAndCheck(), 0u);
  // Absent first chunk, present later ones: still nothing to read.
  ASSERT_EQ(*OffloadSync(*pool_, keys_, ViewFrom(src_, 1)), kChunks - 1);
  EXPECT_EQ(pool_->Lookup(keys_), 0u);
  EXPECT_EQ(RetrieveAndCheck(), 0u);
  // Once chunk 0 arrives the whole chain is usable.
  ASSERT_EQ(*OffloadSync(*pool_, keys_, src_.ConstView()), 1u);
  EXPECT_EQ(RetrieveAndCheck(), kChunks);
}

TEST(RoundTrip, RejectsBuffersThatDoNotMatchTheShape) {
  ModelShape shape = *ModelShape::Preset("tiny");
  PoolOptions o;
  o.shape = shape;
  o.devices.push_back(DramOptions("d", 1 << 20));
  auto pool = MakePool(o);
  ASSERT_NE(pool, nullptr);
  auto keys = MakeKeys(shape, 2, 1);
  KvData data(shape, 2, 1);
  ConstKvBuffer short_src = data.ConstView();
  short_src.layer_base.pop_back();
  auto off = pool->Offload(keys, short_src);
  ASSERT_FALSE(off.ok());
  EXPECT_EQ(off.status().code(), StatusCode::kInvalidArgument);
  ConstKvBuffer past = data.ConstView();
  past.first_chunk = 3;
  EXPECT_EQ(pool->Offload(keys, past).status().code(), StatusCode::kInvalidArgument);
  KvBuffer dst = data.View();
  dst.first_chunk = 3;  // past the last key
  EXPECT_EQ(pool->Retrieve(keys, dst, nullptr).status().code(), StatusCode::kInvalidArgument);
  KvBuffer few = data.View();
  few.layer_base.resize(1);
  EXPECT_EQ(pool->Retrieve(keys, few, nullptr).status().code(), StatusCode::kInvalidArgument);
}

TEST(RoundTrip, RetrieveSkipsChunksTheCallerAlreadyHolds) {
  ModelShape shape = *ModelShape::Preset("tiny");
  TempDir dir;
  auto pool = MakePool(MixedOptions(shape, 8, {1, 2, 1, 2}, dir.path()));
  ASSERT_NE(pool, nullptr);
  auto keys = MakeKeys(shape, 8, 21);
  KvData src(shape, 8, 22);
  ASSERT_EQ(*OffloadSync(*pool, std::span(keys).first(6), src.ConstView()), 6u);
  uint64_t reads_before = 0;
  for (const auto& d : pool->Stats().devices) reads_before += d.reads;

  // The destination holds chunks [3, 8) only.
  KvData tail(shape, 5);
  KvBuffer dst = tail.View();
  dst.first_chunk = 3;
  std::vector<size_t> announced;
  auto h = pool->Retrieve(keys, dst, [&](uint32_t, size_t valid) { announced.push_back(valid); });
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  auto got = h->Wait();
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, 6u) << "chunks [0, 3) held by the caller + [3, 6) read";
  EXPECT_EQ(announced, std::vector<size_t>(shape.layers, 6u));
  KvData expected_tail(shape, 5);
  {
    // Chunks 3..5 of `src`, compared through a view that starts at chunk 3.
    ConstKvBuffer from = ViewFrom(src, 3);
    KvBuffer exp = expected_tail.View();
    for (uint32_t l = 0; l < shape.layers; ++l) {
      std::memcpy(exp.layer_base[l], from.layer_base[l], 3 * src.segment_bytes());
    }
  }
  EXPECT_TRUE(tail.SameAs(expected_tail, 3));
  uint64_t reads_after = 0;
  for (const auto& d : pool->Stats().devices) reads_after += d.reads;
  EXPECT_EQ(reads_after - reads_before, 3u * shape.layers) << "held chunks are not read";

  // Fewer chunks present than the caller holds: the present count.
  KvData none(shape, 1);
  KvBuffer late = none.View();
  late.first_chunk = 7;
  auto h2 = pool->Retrieve(keys, late, nullptr);
  ASSERT_TRUE(h2.ok());
  EXPECT_EQ(*h2->Wait(), 6u);
}

}  // namespace
}  // namespace kvpool::testing
