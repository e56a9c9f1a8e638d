// Pools sharing chunks through the remote tier (a `redis` device on a
// 3-master, 3-replica Redis Cluster on loopback, started by the test): what
// one pool stores another finds, reads verified, tenants apart, and remote
// copies balanced with local ones. Faults are in remote_fault_test.cc.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>

#include "pool_helpers.h"
#include "redis_cluster_fixture.h"
#include "test_util.h"

namespace kvpool::testing {
namespace {

class RemotePoolTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { cluster_ = RedisCluster::StartOrSkip(); }
  static void TearDownTestSuite() { cluster_.reset(); }
  void SetUp() override { ASSERT_TRUE(cluster_) << "the cluster did not start"; }

  DeviceOptions RedisOptions(double bandwidth = 1.0) const {
    DeviceOptions d;
    d.name = "remote";
    d.kind = DeviceKind::kRedis;
    d.nodes = cluster_->seeds();
    d.capacity_bytes = 256ull << 20;
    d.bandwidth_gibps = bandwidth;
    d.key_prefix = "t" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "-" +
                   ::testing::UnitTest::GetInstance()->current_test_info()->name() + ":";
    d.timeout_ms = 1000;
    return d;
  }

  // A pool with a local file device (and a DRAM cache when `dram`) plus the remote tier.
  std::unique_ptr<PoolImpl> OpenPool(const std::string& dir, bool dram, std::string salt = "",
                                     double remote_bandwidth = 1.0) {
    PoolOptions o;
    o.shape = shape_;
    o.tenant_salt = std::move(salt);
    if (dram) o.devices.push_back(DramOptions("dram", 16ull << 20, 8.0));
    o.devices.push_back(FileOptions("ssd", dir, 64ull << 20, 1.0));
    o.devices.push_back(RedisOptions(remote_bandwidth));
    return MakePool(std::move(o));
  }

  static std::unique_ptr<RedisCluster> cluster_;
  ModelShape shape_ = RemoteTestShape();
};

std::unique_ptr<RedisCluster> RemotePoolTest::cluster_;

TEST_F(RemotePoolTest, APoolFindsWhatAnotherStored) {
  TempDir a_dir, b_dir;
  auto a = OpenPool(a_dir.path(), false);
  auto b = OpenPool(b_dir.path(), true);
  ASSERT_TRUE(a && b);
  const auto keys = MakeKeys(shape_, 8, 1);
  KvData src(shape_, 8, 1);
  ASSERT_EQ(*OffloadSync(*a, keys, src.ConstView()), 8u);
  EXPECT_EQ(a->Stats().remote_published_chunks, 8u);

  EXPECT_EQ(b->Lookup(keys), 8u);
  EXPECT_EQ(b->Stats().remote_hit_chunks, 8u);
  KvData dst(shape_, 8);
  auto r = RetrieveSync(*b, keys, dst);
  ASSERT_TRUE(r.valid.ok()) << r.valid.status().ToString();
  EXPECT_EQ(*r.valid, 8u);
  EXPECT_TRUE(dst.SameAs(src, 8));
  ExpectWellOrderedLayers(r, shape_.layers);
  PoolStats s = b->Stats();
  EXPECT_EQ(s.bytes_read_from_remote, 8u * shape_.layers * shape_.SegmentPayloadBytes());
  EXPECT_EQ(s.remote_lookups, 1u) << "the retrieval found the adopted chunks locally";

  // Read again and again: the hot set promotes the chunks into DRAM.
  for (int i = 0; i < 3; ++i) {
    KvData again(shape_, 8);
    ASSERT_EQ(*RetrieveSync(*b, keys, again).valid, 8u);
    EXPECT_TRUE(again.SameAs(src, 8));
  }
  s = b->Stats();
  EXPECT_GT(s.copies_promoted, 0u);
  EXPECT_GT(s.bytes_read_from_copies, 0u);
}

TEST_F(RemotePoolTest, APrefixEndsAtTheFirstChunkTheClusterLacks) {
  TempDir a_dir, b_dir;
  auto a = OpenPool(a_dir.path(), false);
  auto b = OpenPool(b_dir.path(), false);
  ASSERT_TRUE(a && b);
  const auto keys = MakeKeys(shape_, 6, 2);
  KvData src(shape_, 6, 2);
  // Only chunks 0..2 and 4..5 stored: 3 is missing, so B sees 3.
  ASSERT_EQ(*OffloadSync(*a, std::span(keys).first(3), src.ConstView()), 3u);
  ASSERT_EQ(*OffloadSync(*a, keys, ViewFrom(src, 4)), 2u);
  EXPECT_EQ(b->Lookup(keys), 3u);
  KvData dst(shape_, 6);
  EXPECT_EQ(*RetrieveSync(*b, keys, dst).valid, 3u);
  EXPECT_TRUE(dst.SameAs(src, 3));
}

// A leaf another pool stored (for example a partial chunk) is found through
// the cluster when it is the first candidate; the others are searched locally
// only, so that one search is at most one round trip.
TEST_F(RemotePoolTest, FindChildAsksTheClusterForTheFirstCandidateOnly) {
  TempDir a_dir, b_dir;
  auto a = OpenPool(a_dir.path(), false);
  auto b = OpenPool(b_dir.path(), false);
  ASSERT_TRUE(a && b);
  const auto keys = MakeKeys(shape_, 6, 3);
  KvData src(shape_, 6, 3);
  ASSERT_EQ(*OffloadSync(*a, std::span(keys).first(3), src.ConstView()), 3u);
  const std::vector<ChunkKey> with_leaf = {keys[0], keys[1], keys[2], keys[5]};
  ASSERT_EQ(*OffloadSync(*a, with_leaf, ViewFrom(src, 3)), 1u);
  const auto prefix = std::span(keys).first(3);
  ASSERT_EQ(b->Lookup(prefix), 3u);
  const uint64_t asked = b->Stats().remote_lookups;
  EXPECT_EQ(b->FindChild(prefix, std::vector{keys[4], keys[5]}), 2u);
  EXPECT_EQ(b->Stats().remote_lookups, asked + 1) << "one round trip, for the first candidate";
  EXPECT_EQ(b->FindChild(prefix.first(2), std::vector{keys[5]}), 1u)
      << "the cluster checks the parent too";
  EXPECT_EQ(b->FindChild(prefix, std::vector{keys[5], keys[4]}), 0u);
  EXPECT_EQ(b->FindChild(prefix, std::vector{keys[4], keys[5]}), 1u) << "adopted: now local";
  EXPECT_EQ(b->Stats().remote_hit_chunks, 4u);
}

TEST_F(RemotePoolTest, TenantsAndModelsDoNotSeeEachOther) {
  TempDir a_dir, b_dir, c_dir;
  auto a = OpenPool(a_dir.path(), false, "tenant-a");
  auto b = OpenPool(b_dir.path(), false, "tenant-b");
  ASSERT_TRUE(a && b);
  const auto keys = MakeKeys(shape_, 4, 3);
  KvData src(shape_, 4, 3);
  ASSERT_EQ(*OffloadSync(*a, keys, src.ConstView()), 4u);
  EXPECT_EQ(b->Lookup(keys), 0u) << "another tenant's salt is another namespace";
  shape_.head_dim = 16;  // another model shape: another namespace, even with the same salt
  auto c = OpenPool(c_dir.path(), false, "tenant-a");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->Lookup(keys), 0u);
}

TEST_F(RemotePoolTest, DamagedValuesAreMissesNeverWrongBytes) {
  TempDir a_dir, b_dir;
  auto a = OpenPool(a_dir.path(), false);
  ASSERT_TRUE(a);
  const auto keys = MakeKeys(shape_, 4, 4);
  KvData src(shape_, 4, 4);
  ASSERT_EQ(*OffloadSync(*a, keys, src.ConstView()), 4u);
  // Another client overwrites layer 1 of chunk 2 with bytes of the right size.
  const std::string ns = RedisOptions().key_prefix +
                         Namespace::Make(shape_.Fingerprint(), "").id.ToHex() + ":";
  const std::string key = ns + "{" + keys[2].ToHex() + "}:1";
  cluster_->NodeCli(cluster_->base_port(),
                    {"-c", "SET", key, std::string(48 + shape_.SegmentPayloadBytes(), 'x')});
  auto b = OpenPool(b_dir.path(), false);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->Lookup(keys), 4u) << "records are intact";
  KvData dst(shape_, 4);
  auto r = RetrieveSync(*b, keys, dst);
  EXPECT_EQ(*r.valid, 2u);
  EXPECT_TRUE(dst.SameAs(src, 2));
  EXPECT_EQ(b->Stats().miss_chunks_on_error, 2u);
  EXPECT_EQ(b->Lookup(keys), 2u) << "the damaged chunk is dropped here, its tail unreachable";
}

TEST_F(RemotePoolTest, RemoteCopiesShareReadsWithHomeAndFallBackWhenGone) {
  TempDir dir;
  auto a = OpenPool(dir.path(), false, "", /*remote_bandwidth=*/1.0);
  ASSERT_TRUE(a);
  const auto keys = MakeKeys(shape_, 16, 5);
  KvData src(shape_, 16, 5);
  ASSERT_EQ(*OffloadSync(*a, keys, src.ConstView()), 16u);
  KvData dst(shape_, 16);
  ASSERT_EQ(*RetrieveSync(*a, keys, dst).valid, 16u);
  EXPECT_TRUE(dst.SameAs(src, 16));
  PoolStats s = a->Stats();
  EXPECT_GT(s.bytes_read_from_remote, 0u) << "equal bandwidths: the remote copy takes a share";
  EXPECT_GT(s.bytes_read_from_home, 0u);

  // The cluster loses everything: reads fall back to the local home copy.
  for (int port : cluster_->Masters()) cluster_->NodeCli(port, {"FLUSHALL"});
  KvData again(shape_, 16);
  ASSERT_EQ(*RetrieveSync(*a, keys, again).valid, 16u);
  EXPECT_TRUE(again.SameAs(src, 16));
  s = a->Stats();
  EXPECT_GT(s.remote_fallbacks, 0u);
  EXPECT_EQ(s.miss_chunks_on_error, 0u);
}

TEST_F(RemotePoolTest, RemoteOnlyChunksAreBoundedByTheDeviceCapacity) {
  TempDir a_dir, b_dir;
  auto a = OpenPool(a_dir.path(), false);
  ASSERT_TRUE(a);
  const auto keys = MakeKeys(shape_, 12, 6);
  KvData src(shape_, 12, 6);
  ASSERT_EQ(*OffloadSync(*a, keys, src.ConstView()), 12u);
  PoolOptions o;
  o.shape = shape_;
  o.devices.push_back(FileOptions("ssd", b_dir.path(), 64ull << 20, 1.0));
  DeviceOptions r = RedisOptions();
  r.capacity_bytes = 8ull * shape_.layers * 65536;  // indexes 8 chunks
  o.devices.push_back(r);
  auto b = MakePool(std::move(o));
  ASSERT_TRUE(b);
  EXPECT_EQ(b->Lookup(keys), 8u);
  EXPECT_EQ(b->Stats().devices[1].segments, 8u * shape_.layers);
}

TEST_F(RemotePoolTest, ItsBandwidthIsMeasuredAtOpenAndWeighsPlacementOfReads) {
  TempDir dir;
  PoolOptions o;
  o.shape = shape_;
  o.probe_mib = 4;
  o.devices.push_back(FileOptions("ssd", dir.path(), 64ull << 20, 1.0));
  o.devices.push_back(RedisOptions(/*bandwidth=*/0));  // 0: probe
  auto pool = MakePool(std::move(o));
  ASSERT_TRUE(pool);
  const PoolStats stats = pool->Stats();
  const DeviceStats& d = stats.devices[1];
  EXPECT_EQ(d.role, "remote");
  EXPECT_TRUE(d.bandwidth_probed);
  EXPECT_GT(d.bandwidth_gibps, 0.0);
  EXPECT_EQ(d.segments, 0u) << "probe data is not indexed";
}

}  // namespace
}  // namespace kvpool::testing
