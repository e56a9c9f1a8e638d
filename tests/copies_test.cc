// Copies, not partitions: every chunk lives whole on the home (persistent)
// devices, DRAM regions hold copies of the hot set, reads are planned over
// the copies, and a failed copy is read again from home.
#include <gtest/gtest.h>

#include "copies_scenario.h"
#include "testing/fault_device.h"

namespace kvpool::testing {
namespace {

ModelShape SmallShape() {
  ModelShape s;
  s.name = "8x2x32";
  s.layers = 8;
  s.kv_heads = 2;
  s.head_dim = 32;  // 64 KiB segments, 512 KiB chunks
  return s;
}

uint64_t ChunkBytes(const ModelShape& s) { return uint64_t{s.SegmentBytes()} * s.layers; }

std::string Engine() { return UringStatus().ok() ? "uring" : "psync"; }

TEST(Copies, DocumentsLargerThanDramAreAllKeptBeforeAndAfterARestart) {
  const ModelShape shape = SmallShape();
  // 128 chunks (64 MiB) into 2 x 4 MiB of DRAM and a 64 MiB extent: full.
  RunKeepScenario(KeepScenario{shape, 8, 16, 8 * ChunkBytes(shape), 128 * ChunkBytes(shape)});
}

class CopiesPool : public ::testing::Test {
 protected:
  void Open(double dram_gibps, double ssd_gibps, bool throttle,
            std::shared_ptr<FaultPlan> dram_faults = nullptr,
            std::shared_ptr<FaultPlan> ssd_faults = nullptr) {
    PoolOptions o;
    o.shape = shape_;
    o.devices.push_back(DramOptions("dram0", 64 * ChunkBytes(shape_), dram_gibps));
    o.devices.push_back(
        ExtentOptions("ssd0", dir_.path() + "/ssd0.extent", 256 * ChunkBytes(shape_), Engine(),
                      ssd_gibps));
    if (throttle) {
      o.devices[0].throttle_gibps = dram_gibps;
      o.devices[1].throttle_gibps = ssd_gibps;
    }
    pool_ = MakePool(o, [&](size_t i, std::unique_ptr<Device> d) -> std::unique_ptr<Device> {
      auto plan = i == 0 ? dram_faults : ssd_faults;
      return plan ? NewFaultDevice(std::move(d), plan) : std::move(d);
    });
    ASSERT_NE(pool_, nullptr);
  }

  std::vector<ChunkKey> Store(size_t chunks, uint64_t seed) {
    auto keys = MakeKeys(shape_, chunks, seed);
    KvData data(shape_, chunks, seed + 1);
    auto stored = OffloadSync(*pool_, keys, data.ConstView());
    EXPECT_TRUE(stored.ok()) << stored.status().ToString();
    return keys;
  }

  // Reads back and checks the bytes; returns the handle's error.
  Status ReadBack(const std::vector<ChunkKey>& keys, uint64_t seed, size_t* valid) {
    KvData want(shape_, keys.size(), seed + 1), got(shape_, keys.size());
    auto h = pool_->Retrieve(keys, got.View(), {});
    EXPECT_TRUE(h.ok());
    auto n = h->Wait();
    EXPECT_TRUE(n.ok());
    *valid = n.ok() ? *n : 0;
    EXPECT_TRUE(got.SameAs(want, *valid)) << "wrong bytes";
    return h->error();
  }

  ModelShape shape_ = SmallShape();
  TempDir dir_;
  std::unique_ptr<PoolImpl> pool_;
};

TEST_F(CopiesPool, AChunkInDramStillGivesTheHomeDeviceItsShare) {
  Open(/*dram=*/2.0, /*ssd=*/1.0, /*throttle=*/true);
  auto keys = Store(12, 7);  // admitted on offload: every chunk has a copy
  EXPECT_EQ(pool_->Stats().copy_chunks, 12u);
  size_t valid = 0;
  EXPECT_TRUE(ReadBack(keys, 7, &valid).ok());
  EXPECT_EQ(valid, 12u);
  PoolStats s = pool_->Stats();
  double home = double(s.bytes_read_from_home);
  double share = home / (home + double(s.bytes_read_from_copies));
  std::cout << "home share of the read: " << share << " (bandwidths 2:1 -> 1/3)" << std::endl;
  EXPECT_GT(share, 0.2);
  EXPECT_LT(share, 0.47);
}

TEST_F(CopiesPool, AFailedCopyIsReadAgainFromHome) {
  auto faults = std::make_shared<FaultPlan>();
  Open(8.0, 1.0, false, faults);
  auto keys = Store(6, 11);
  {
    std::lock_guard<std::mutex> lock(faults->mu);
    faults->flip_nth_read = 1;  // the next DRAM read comes back corrupt
  }
  size_t valid = 0;
  Status e = ReadBack(keys, 11, &valid);
  EXPECT_TRUE(e.ok()) << e.ToString();
  EXPECT_EQ(valid, 6u) << "a bad copy must not cost the chunk";
  EXPECT_EQ(faults->injected.load(), 1u);
  PoolStats s = pool_->Stats();
  EXPECT_EQ(s.copy_fallbacks, 1u);
  EXPECT_GE(s.copies_dropped, 1u);
  EXPECT_EQ(s.chunks, 6u);
}

TEST_F(CopiesPool, AFailedHomeReadIsAMissAndIsReported) {
  auto faults = std::make_shared<FaultPlan>();
  Open(8.0, 1.0, false, nullptr, faults);
  auto keys = Store(6, 13);
  pool_.reset();  // a restart drops the copies: every segment is read from home
  Open(8.0, 1.0, false, nullptr, faults);
  {
    std::lock_guard<std::mutex> lock(faults->mu);
    faults->flip_nth_read = 1;
  }
  size_t valid = 0;
  Status e = ReadBack(keys, 13, &valid);
  EXPECT_LT(valid, 6u);
  EXPECT_EQ(e.code(), StatusCode::kCorruption) << e.ToString();
  EXPECT_NE(e.message().find("ssd0"), std::string::npos) << e.ToString();
  EXPECT_EQ(pool_->Stats().retrieve_errors, 1u);
}

TEST_F(CopiesPool, AQuarantinedCopyDeviceLeavesReadPlans) {
  auto faults = std::make_shared<FaultPlan>();
  Open(8.0, 1.0, false, faults);
  auto keys = Store(16, 17);
  {
    std::lock_guard<std::mutex> lock(faults->mu);
    faults->fail_all_reads = true;
  }
  size_t valid = 0;
  EXPECT_TRUE(ReadBack(keys, 17, &valid).ok());  // every copy read falls back
  EXPECT_EQ(valid, 16u);
  ASSERT_FALSE(pool_->Stats().devices[0].in_placement) << "8 failures in a row quarantine";
  const uint64_t dram_reads = pool_->Stats().devices[0].reads;
  auto more = Store(4, 19);
  EXPECT_TRUE(ReadBack(more, 19, &valid).ok());
  EXPECT_EQ(valid, 4u);
  EXPECT_EQ(pool_->Stats().devices[0].reads, dram_reads) << "a quarantined device was read";
}

TEST_F(CopiesPool, AOneOffScanDoesNotFlushTheHotSet) {
  Open(8.0, 1.0, false);  // 64 chunk copies: 16 probation, 48 protected
  auto hot = Store(12, 21);
  size_t valid = 0;
  for (int i = 0; i < 2; ++i) EXPECT_TRUE(ReadBack(hot, 21, &valid).ok());
  auto scan = Store(200, 23);  // one long document, 3x the DRAM
  EXPECT_TRUE(ReadBack(scan, 23, &valid).ok());
  EXPECT_EQ(valid, 200u);
  for (const ChunkKey& k : hot) EXPECT_TRUE(pool_->hot_set()->HasReadyCopy(k));
  EXPECT_LE(pool_->Stats().copy_chunks, 64u);
}

TEST_F(CopiesPool, ReadsPromoteChunksWhoseCopyWasLost) {
  Open(8.0, 1.0, false);
  auto keys = Store(8, 25);
  pool_.reset();  // a restart: DRAM copies are gone
  Open(8.0, 1.0, false);
  EXPECT_EQ(pool_->Stats().copy_chunks, 0u);
  size_t valid = 0;
  EXPECT_TRUE(ReadBack(keys, 25, &valid).ok());
  EXPECT_EQ(valid, 8u);
  PoolStats s = pool_->Stats();
  EXPECT_EQ(s.copies_promoted, 8u);
  EXPECT_EQ(s.copy_chunks, 8u);
  for (const ChunkKey& k : keys) EXPECT_TRUE(pool_->hot_set()->HasReadyCopy(k));
  EXPECT_TRUE(ReadBack(keys, 25, &valid).ok());  // now partly from the copies
  EXPECT_GT(pool_->Stats().bytes_read_from_copies, 0u);
}

// A read that admits a chunk attaches its new copy after placing it; a
// Remove of that chunk may run in between (it erases the chunk, then makes
// the hot set forget it). The copy attached after that must not stay: no
// key is left to remove it by, and its DRAM slots would never be freed.
TEST_F(CopiesPool, ACopyAttachedAfterItsChunkWasRemovedIsDropped) {
  Open(8.0, 1.0, false);
  auto keys = Store(2, 33);
  EXPECT_EQ(pool_->Remove(keys), 2u);  // erased, copies forgotten and freed
  EXPECT_EQ(pool_->Stats().devices[0].used_bytes, 0u);
  {
    // The read's side of the interleaving: copies placed and attached for
    // chunks that are already gone.
    std::vector<CopyRef> late = pool_->AllocateCopies(keys);
    ASSERT_EQ(late.size(), 2u);
  }  // the read ends: its references go
  EXPECT_EQ(pool_->hot_set()->counts().copies, 0u);
  EXPECT_EQ(pool_->Stats().devices[0].used_bytes, 0u) << "the late copies' DRAM slots leaked";
}

TEST_F(CopiesPool, StatsDoesNotWalkTheTable) {
  Open(8.0, 1.0, false);
  Store(40, 27);
  const uint64_t scans = pool_->glt().scans();
  for (int i = 0; i < 10; ++i) (void)pool_->Stats();
  EXPECT_EQ(pool_->glt().scans(), scans);
  EXPECT_EQ(pool_->Stats().chunks, 40u);
}

TEST_F(CopiesPool, AChunkStrideSmallerThanASegmentIsInvalid) {
  Open(8.0, 1.0, false);
  auto keys = Store(2, 29);
  KvData buf(shape_, 2);
  KvBuffer dst = buf.View();
  dst.chunk_stride = shape_.SegmentPayloadBytes() - 1;
  auto r = pool_->Retrieve(keys, dst, {});
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("chunk_stride"), std::string::npos);
  ConstKvBuffer src = buf.ConstView();
  src.chunk_stride = 4096;
  auto o = pool_->Offload(MakeKeys(shape_, 2, 31), src);
  EXPECT_EQ(o.status().code(), StatusCode::kInvalidArgument);
}

TEST(Copies, UnreachableChunksAreReclaimedAtRecovery) {
  const ModelShape shape = SmallShape();
  TempDir dir;
  PoolOptions o;
  o.shape = shape;
  o.devices.push_back(
      ExtentOptions("ssd0", dir.path() + "/ssd0.extent", 64 * ChunkBytes(shape), Engine()));
  auto keys = MakeKeys(shape, 10, 33);
  {
    auto pool = Pool::Open(o);
    ASSERT_TRUE(pool.ok()) << pool.status().ToString();
    KvData data(shape, 10, 34);
    ASSERT_TRUE(OffloadSync(**pool, keys, data.ConstView()).ok());
    EXPECT_EQ((*pool)->Remove(std::span(keys).subspan(3, 1)), 1u);  // chunks 4..9 unreachable
  }
  auto pool = Pool::Open(o);
  ASSERT_TRUE(pool.ok()) << pool.status().ToString();
  PoolStats s = (*pool)->Stats();
  EXPECT_EQ((*pool)->Lookup(keys), 3u);
  EXPECT_EQ(s.recovered_chunks, 3u);
  EXPECT_EQ(s.unreachable_reclaimed_chunks, 6u);
  EXPECT_EQ(s.devices[0].segments, 3u * shape.layers) << "slots of unreachable chunks leaked";
}

TEST(Copies, ADramOnlyPoolPartitionsAsBefore) {
  const ModelShape shape = SmallShape();
  PoolOptions o;
  o.shape = shape;
  o.devices.push_back(DramOptions("a", 64 * ChunkBytes(shape), 1.0));
  o.devices.push_back(DramOptions("b", 64 * ChunkBytes(shape), 3.0));
  auto pool = MakePool(o);
  ASSERT_NE(pool, nullptr);
  KvData data(shape, 8, 35);
  ASSERT_TRUE(OffloadSync(*pool, MakeKeys(shape, 8, 36), data.ConstView()).ok());
  PoolStats s = pool->Stats();
  EXPECT_EQ(s.devices[0].role, "home");
  EXPECT_EQ(s.devices[1].role, "home");
  EXPECT_EQ(s.devices[0].segments, 16u);  // 64 segments split 1:3
  EXPECT_EQ(s.devices[1].segments, 48u);
  EXPECT_EQ(s.copy_chunks, 0u);
}

TEST(Copies, PartitionModeIsStillSelectable) {
  const ModelShape shape = SmallShape();
  TempDir dir;
  PoolOptions o;
  o.shape = shape;
  o.placement = PlacementMode::kPartition;
  o.devices.push_back(DramOptions("dram0", 64 * ChunkBytes(shape), 3.0));
  o.devices.push_back(
      ExtentOptions("ssd0", dir.path() + "/ssd0.extent", 64 * ChunkBytes(shape), Engine(), 1.0));
  auto pool = MakePool(o);
  ASSERT_NE(pool, nullptr);
  KvData data(shape, 8, 37);
  ASSERT_TRUE(OffloadSync(*pool, MakeKeys(shape, 8, 38), data.ConstView()).ok());
  PoolStats s = pool->Stats();
  EXPECT_EQ(s.devices[0].role, "home");
  EXPECT_EQ(s.devices[0].segments, 48u);
  EXPECT_EQ(s.devices[1].segments, 16u);
  EXPECT_EQ(s.copy_chunks, 0u);
}

}  // namespace
}  // namespace kvpool::testing
