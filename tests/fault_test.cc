// Faults: corrupted and failed reads turn a chunk and everything after it
// into a miss; failed writes never become visible; a device that keeps
// failing leaves placement.
#include <gtest/gtest.h>

#include "pool_helpers.h"
#include "testing/fault_device.h"

namespace kvpool::testing {
namespace {

constexpr size_t kChunks = 12;

class FaultTest : public ::testing::Test {
 protected:
  // Devices: "good" (DRAM) and "bad" (DRAM behind a fault device), equal
  // bandwidth, plus `extra` more healthy DRAM devices.
  void Open(size_t extra = 0, uint32_t layers = 4) {
    shape_ = *ModelShape::Preset("tiny");
    shape_.layers = layers;
    PoolOptions o;
    o.shape = shape_;
    o.devices.push_back(DramOptions("good", 4 << 20));
    o.devices.push_back(DramOptions("bad", 4 << 20));
    for (size_t i = 0; i < extra; ++i) {
      o.devices.push_back(DramOptions("extra" + std::to_string(i), 4 << 20));
    }
    pool_ = MakePool(o, [this](size_t i, std::unique_ptr<Device> d) {
      return i == kBad ? NewFaultDevice(std::move(d), plan_) : std::move(d);
    });
    ASSERT_NE(pool_, nullptr);
    keys_ = MakeKeys(shape_, kChunks, 1);
    src_ = std::make_unique<KvData>(shape_, kChunks, 2);
  }

  void OffloadAll() {
    auto stored = OffloadSync(*pool_, keys_, src_->ConstView());
    ASSERT_TRUE(stored.ok()) << stored.status().ToString();
    ASSERT_EQ(*stored, kChunks);
  }

  // The slot of some layer of `chunk` that lives on the bad device.
  uint32_t BadSlotOf(size_t chunk) {
    ChunkRef rec = pool_->glt().Find(keys_[chunk]);
    EXPECT_NE(rec, nullptr);
    for (uint32_t l = 0; rec && l < rec->layers; ++l) {
      if (rec->segment(l).device == kBad) return rec->segment(l).slot;
    }
    ADD_FAILURE() << "chunk " << chunk << " has no segment on the bad device";
    return 0;
  }

  // The first chunk with a segment on the bad device, at or after `from`.
  size_t FirstChunkOnBad(size_t from) {
    for (size_t c = from; c < kChunks; ++c) {
      ChunkRef rec = pool_->glt().Find(keys_[c]);
      for (uint32_t l = 0; rec && l < rec->layers; ++l) {
        if (rec->segment(l).device == kBad) return c;
      }
    }
    ADD_FAILURE() << "no chunk at or after " << from << " touches the bad device";
    return kChunks;
  }

  RetrieveOutcome RetrieveInto(KvData& dst) {
    RetrieveOutcome r = RetrieveSync(*pool_, keys_, dst);
    ExpectWellOrderedLayers(r, shape_.layers);
    return r;
  }

  static constexpr uint16_t kBad = 1;
  std::shared_ptr<FaultPlan> plan_ = std::make_shared<FaultPlan>();
  ModelShape shape_;
  std::unique_ptr<PoolImpl> pool_;
  std::vector<ChunkKey> keys_;
  std::unique_ptr<KvData> src_;
};

TEST_F(FaultTest, FlippedBitMakesThatChunkAndLaterOnesAMiss) {
  Open();
  OffloadAll();
  const size_t bad = FirstChunkOnBad(5);
  {
    std::lock_guard<std::mutex> lock(plan_->mu);
    plan_->flip_read_slots = {BadSlotOf(bad)};
  }
  KvData dst(shape_, kChunks);
  RetrieveOutcome r = RetrieveInto(dst);
  ASSERT_TRUE(r.valid.ok()) << r.valid.status().ToString();
  EXPECT_EQ(*r.valid, bad) << "Wait returns the index of the first bad chunk";
  EXPECT_TRUE(dst.SameAs(*src_, bad)) << "valid chunks are byte-exact";
  EXPECT_EQ(plan_->injected.load(), 1u);

  PoolStats s = pool_->Stats();
  EXPECT_EQ(s.devices[kBad].errors, 1u);
  EXPECT_EQ(s.devices[0].errors, 0u);
  EXPECT_EQ(s.miss_chunks_on_error, kChunks - bad);
  EXPECT_TRUE(s.devices[kBad].in_placement) << "a checksum mismatch is a data fault only";

  // The corrupt chunk is gone: a second lookup stops before it, and a clean
  // retrieval still delivers the good prefix.
  {
    std::lock_guard<std::mutex> lock(plan_->mu);
    plan_->flip_read_slots.clear();
  }
  EXPECT_EQ(pool_->Lookup(keys_), bad);
  EXPECT_EQ(pool_->glt().Find(keys_[bad]), nullptr);
  KvData again(shape_, kChunks);
  RetrieveOutcome r2 = RetrieveInto(again);
  EXPECT_EQ(*r2.valid, bad);
  EXPECT_TRUE(again.SameAs(*src_, bad));

  // Offloading the prefix again restores only the dropped chunk.
  auto healed = OffloadSync(*pool_, keys_, src_->ConstView());
  ASSERT_TRUE(healed.ok()) << healed.status().ToString();
  EXPECT_EQ(*healed, 1u);
  KvData whole(shape_, kChunks);
  EXPECT_EQ(*RetrieveInto(whole).valid, kChunks);
  EXPECT_TRUE(whole.SameAs(*src_, kChunks));
}

TEST_F(FaultTest, FlipOfTheNthReadIsCaught) {
  // One layer on one device with one worker: the first read is chunk 0.
  shape_ = *ModelShape::Preset("tiny");
  PoolOptions o;
  o.shape = shape_;
  o.devices.push_back(DramOptions("only", 4 << 20));
  pool_ = MakePool(
      o, [this](size_t, std::unique_ptr<Device> d) { return NewFaultDevice(std::move(d), plan_); });
  ASSERT_NE(pool_, nullptr);
  keys_ = MakeKeys(shape_, kChunks, 3);
  src_ = std::make_unique<KvData>(shape_, kChunks, 4);
  OffloadAll();
  {
    std::lock_guard<std::mutex> lock(plan_->mu);
    plan_->flip_nth_read = 3;  // reads are issued layer-major: layer 0, chunk 2
  }
  KvData dst(shape_, kChunks);
  RetrieveOutcome r = RetrieveInto(dst);
  EXPECT_EQ(*r.valid, 2u);
  EXPECT_TRUE(dst.SameAs(*src_, 2));
  EXPECT_EQ(pool_->Stats().devices[0].errors, 1u);
  EXPECT_EQ(pool_->Lookup(keys_), 2u);
}

TEST_F(FaultTest, ReadIoErrorMakesThatChunkAndLaterOnesAMiss) {
  Open();
  OffloadAll();
  const size_t bad = FirstChunkOnBad(3);
  {
    std::lock_guard<std::mutex> lock(plan_->mu);
    plan_->fail_read_slots = {BadSlotOf(bad)};
  }
  KvData dst(shape_, kChunks);
  RetrieveOutcome r = RetrieveInto(dst);
  ASSERT_TRUE(r.valid.ok()) << r.valid.status().ToString();
  EXPECT_EQ(*r.valid, bad);
  EXPECT_TRUE(dst.SameAs(*src_, bad));
  PoolStats s = pool_->Stats();
  EXPECT_EQ(s.devices[kBad].errors, 1u);
  EXPECT_EQ(s.miss_chunks_on_error, kChunks - bad);
  EXPECT_EQ(s.retrieved_chunks, bad);
  EXPECT_TRUE(s.devices[kBad].in_placement) << "one failure is not a failing device";
  EXPECT_EQ(pool_->Lookup(keys_), bad);
}

TEST_F(FaultTest, FaultsInSeveralChunksReportTheEarliest) {
  Open();
  OffloadAll();
  const size_t first = FirstChunkOnBad(2);
  const size_t second = FirstChunkOnBad(first + 1);
  {
    std::lock_guard<std::mutex> lock(plan_->mu);
    plan_->fail_read_slots = {BadSlotOf(second)};
    plan_->flip_read_slots = {BadSlotOf(first)};
  }
  KvData dst(shape_, kChunks);
  RetrieveOutcome r = RetrieveInto(dst);
  EXPECT_EQ(*r.valid, first);
  EXPECT_TRUE(dst.SameAs(*src_, first));
  EXPECT_EQ(pool_->Stats().devices[kBad].errors, 2u);
  EXPECT_EQ(pool_->Lookup(keys_), first);
}

TEST_F(FaultTest, WriteErrorsKeepTheOffloadsChunksInvisible) {
  Open();
  {
    std::lock_guard<std::mutex> lock(plan_->mu);
    plan_->fail_all_writes = true;
  }
  // Some chunks touch the bad device and some may not; only those that were
  // written whole may become visible.
  auto stored = OffloadSync(*pool_, keys_, src_->ConstView());
  PoolStats s = pool_->Stats();
  EXPECT_GT(s.devices[kBad].errors, 0u);
  EXPECT_EQ(s.devices[kBad].segments, 0u) << "slots of failed chunks are freed";
  size_t visible = 0;
  for (size_t c = 0; c < kChunks; ++c) {
    ChunkRef rec = pool_->glt().Find(keys_[c]);
    if (!rec) continue;
    ++visible;
    for (uint32_t l = 0; l < rec->layers; ++l) {
      EXPECT_NE(rec->segment(l).device, kBad) << "chunk " << c << " layer " << l;
    }
  }
  EXPECT_LT(visible, kChunks);
  EXPECT_EQ(s.chunks, visible);
  EXPECT_EQ(s.devices[0].segments, visible * shape_.layers);
  if (visible == 0) {
    ASSERT_FALSE(stored.ok());
    EXPECT_EQ(stored.status().code(), StatusCode::kIOError);
  } else {
    ASSERT_TRUE(stored.ok()) << stored.status().ToString();
    EXPECT_EQ(*stored, visible);
  }
  size_t prefix = pool_->Lookup(keys_);
  KvData dst(shape_, kChunks);
  EXPECT_EQ(*RetrieveInto(dst).valid, prefix);
  EXPECT_TRUE(dst.SameAs(*src_, prefix));
}

TEST_F(FaultTest, WriteErrorsOnTheOnlyDeviceFailTheOffload) {
  shape_ = *ModelShape::Preset("tiny");
  PoolOptions o;
  o.shape = shape_;
  o.devices.push_back(DramOptions("only", 4 << 20));
  pool_ = MakePool(
      o, [this](size_t, std::unique_ptr<Device> d) { return NewFaultDevice(std::move(d), plan_); });
  ASSERT_NE(pool_, nullptr);
  keys_ = MakeKeys(shape_, 3, 5);
  src_ = std::make_unique<KvData>(shape_, 3, 6);
  {
    std::lock_guard<std::mutex> lock(plan_->mu);
    plan_->fail_all_writes = true;
  }
  auto stored = OffloadSync(*pool_, keys_, src_->ConstView());
  ASSERT_FALSE(stored.ok());
  EXPECT_EQ(stored.status().code(), StatusCode::kIOError);
  EXPECT_EQ(pool_->Lookup(keys_), 0u);
  PoolStats s = pool_->Stats();
  EXPECT_EQ(s.chunks, 0u);
  EXPECT_EQ(s.segments, 0u);
  EXPECT_EQ(s.devices[0].errors, 3u * shape_.layers);
}

TEST_F(FaultTest, FailingDeviceLeavesPlacementAndLaterOffloadsAvoidIt) {
  Open(/*extra=*/1);
  {
    std::lock_guard<std::mutex> lock(plan_->mu);
    plan_->fail_all_writes = true;
  }
  (void)OffloadSync(*pool_, keys_, src_->ConstView());
  PoolStats s = pool_->Stats();
  ASSERT_GE(s.devices[kBad].errors, uint64_t{DeviceRunner::kFailuresBeforeQuarantine});
  EXPECT_FALSE(s.devices[kBad].in_placement);
  EXPECT_TRUE(s.devices[0].in_placement);
  EXPECT_TRUE(s.devices[2].in_placement);
  {
    std::lock_guard<std::mutex> lock(plan_->mu);
    plan_->fail_all_writes = false;  // even healed, it stays out
  }
  const uint64_t bad_writes = s.devices[kBad].writes;
  auto keys2 = MakeKeys(shape_, kChunks, 77);
  KvData src2(shape_, kChunks, 78);
  auto stored = OffloadSync(*pool_, keys2, src2.ConstView());
  ASSERT_TRUE(stored.ok()) << stored.status().ToString();
  EXPECT_EQ(*stored, kChunks);
  s = pool_->Stats();
  EXPECT_EQ(s.devices[kBad].writes, bad_writes) << "no write goes to a quarantined device";
  EXPECT_EQ(s.devices[kBad].segments, 0u);
  EXPECT_GT(s.devices[0].segments, 0u);
  EXPECT_GT(s.devices[2].segments, 0u);
  KvData dst(shape_, kChunks);
  RetrieveOutcome r = RetrieveSync(*pool_, keys2, dst);
  EXPECT_EQ(*r.valid, kChunks);
  EXPECT_TRUE(dst.SameAs(src2, kChunks));
}

TEST_F(FaultTest, DeviceFailingReadsInARowLeavesPlacement) {
  Open(/*extra=*/1);
  OffloadAll();
  ASSERT_GE(pool_->Stats().devices[kBad].segments,
            uint64_t{DeviceRunner::kFailuresBeforeQuarantine});
  const size_t first = FirstChunkOnBad(0);
  {
    std::lock_guard<std::mutex> lock(plan_->mu);
    plan_->fail_all_reads = true;
  }
  KvData dst(shape_, kChunks);
  RetrieveOutcome r = RetrieveInto(dst);
  PoolStats s = pool_->Stats();
  EXPECT_FALSE(s.devices[kBad].in_placement);
  EXPECT_EQ(*r.valid, first);
  EXPECT_TRUE(dst.SameAs(*src_, *r.valid));
  auto keys2 = MakeKeys(shape_, 4, 91);
  KvData src2(shape_, 4, 92);
  const uint64_t bad_writes = s.devices[kBad].writes;
  ASSERT_EQ(*OffloadSync(*pool_, keys2, src2.ConstView()), 4u);
  EXPECT_EQ(pool_->Stats().devices[kBad].writes, bad_writes);
}

}  // namespace
}  // namespace kvpool::testing
