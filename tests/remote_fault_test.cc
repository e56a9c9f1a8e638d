// The remote tier under faults, on a local 3-master, 3-replica Redis Cluster:
// a slow node, a hung node (SIGSTOP: a partition that drops every packet),
// keys evicted under maxmemory, a master killed (its replica takes over),
// and no cluster at all. Each must turn into slower reads or misses: never
// wrong bytes, never a wait past the configured timeout.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "pool_helpers.h"
#include "redis_cluster_fixture.h"
#include "test_util.h"
#include "tier/redis/crc16.h"

namespace kvpool::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

constexpr uint32_t kTimeoutMs = 300;
constexpr size_t kChunks = 48;

double Seconds(steady_clock::time_point since) {
  return std::chrono::duration<double>(steady_clock::now() - since).count();
}

// Longest a call may take: the timeout for the lookup and for each read
// batch it waits on, plus scheduling slack for a loaded 2-core machine
// under sanitizers.
constexpr double kBoundSeconds = 3 * kTimeoutMs / 1000.0 + 2.0;

class RemoteFaultTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { cluster_ = RedisCluster::StartOrSkip(); }
  static void TearDownTestSuite() { cluster_.reset(); }
  void SetUp() override { ASSERT_TRUE(cluster_) << "the cluster did not start"; }

  DeviceOptions RedisOptions() const {
    DeviceOptions d;
    d.name = "remote";
    d.kind = DeviceKind::kRedis;
    d.nodes = cluster_->seeds();
    d.capacity_bytes = 256ull << 20;
    d.bandwidth_gibps = 1.0;
    d.key_prefix = std::string("f-") +
                   ::testing::UnitTest::GetInstance()->current_test_info()->name() + ":";
    d.timeout_ms = kTimeoutMs;
    return d;
  }

  std::unique_ptr<PoolImpl> OpenPool(const std::string& dir) {
    PoolOptions o;
    o.shape = shape_;
    o.devices.push_back(FileOptions("ssd", dir, 64ull << 20, 1.0));
    o.devices.push_back(RedisOptions());
    return MakePool(std::move(o));
  }

  // Pool A stores kChunks chunks; returns its data.
  KvData StoreFromA(const std::vector<ChunkKey>& keys, uint64_t seed) {
    TempDir dir;
    auto a = OpenPool(dir.path());
    KvData src(shape_, keys.size(), seed);
    EXPECT_TRUE(a);
    if (!a) return src;
    EXPECT_EQ(*OffloadSync(*a, keys, src.ConstView()), keys.size());
    EXPECT_EQ(a->Stats().remote_published_chunks, keys.size());
    return src;
  }

  // The master that holds `chunk`'s keys (they share the hash tag {chunk}).
  int MasterOf(const ChunkKey& chunk) const {
    return cluster_->MasterForSlot(redis::KeySlot("{" + chunk.ToHex() + "}"));
  }

  // Retrieves `keys` from `pool` and checks that every chunk it says it
  // read equals `src`. Returns how many it read.
  size_t RetrieveChecked(Pool& pool, const std::vector<ChunkKey>& keys, const KvData& src) {
    KvData dst(shape_, keys.size());
    auto r = RetrieveSync(pool, keys, dst);
    EXPECT_TRUE(r.valid.ok()) << r.valid.status().ToString();
    const size_t n = r.valid.ok() ? *r.valid : 0;
    EXPECT_TRUE(dst.SameAs(src, n)) << "wrong bytes in the first " << n << " chunks";
    return n;
  }

  static std::unique_ptr<RedisCluster> cluster_;
  ModelShape shape_ = RemoteTestShape();
};

std::unique_ptr<RedisCluster> RemoteFaultTest::cluster_;

TEST_F(RemoteFaultTest, NoReachableSeedFailsTheOpenNamingIt) {
  PoolOptions o;
  o.shape = shape_;
  TempDir dir;
  o.devices.push_back(FileOptions("ssd", dir.path(), 16ull << 20, 1.0));
  DeviceOptions r = RedisOptions();
  r.nodes = {"127.0.0.1:1"};
  o.devices.push_back(r);
  const auto t0 = steady_clock::now();
  auto pool = Pool::Open(o);
  ASSERT_FALSE(pool.ok());
  EXPECT_EQ(pool.status().code(), StatusCode::kIOError) << pool.status().ToString();
  EXPECT_NE(pool.status().message().find("127.0.0.1:1"), std::string::npos) << pool.status().ToString();
  EXPECT_LT(Seconds(t0), kBoundSeconds);
}

TEST_F(RemoteFaultTest, ASlowNodeGivesSlowerReadsNotMisses) {
  const auto keys = MakeKeys(shape_, kChunks, 11);
  const KvData src = StoreFromA(keys, 11);
  TempDir dir;
  auto b = OpenPool(dir.path());
  ASSERT_TRUE(b);
  ASSERT_EQ(b->Lookup(keys), kChunks);
  // One master stalls for 150 ms, within the 300 ms timeout.
  const int port = MasterOf(keys[0]);
  std::thread slow([&] { cluster_->NodeCli(port, {"DEBUG", "SLEEP", "0.15"}); });
  std::this_thread::sleep_for(milliseconds(20));
  EXPECT_EQ(RetrieveChecked(*b, keys, src), kChunks);
  slow.join();
}

TEST_F(RemoteFaultTest, AHungNodeIsBoundedByTheTimeoutAndHealsAfter) {
  const auto keys = MakeKeys(shape_, kChunks, 12);
  const KvData src = StoreFromA(keys, 12);
  TempDir dir;
  auto b = OpenPool(dir.path());
  ASSERT_TRUE(b);
  ASSERT_EQ(b->Lookup(keys), kChunks);
  const int port = MasterOf(keys[kChunks / 2]);
  ASSERT_GT(port, 0);
  // Hung for less than the cluster's node timeout (1.5 s): no failover.
  cluster_->Stop(port);
  auto t0 = steady_clock::now();
  const size_t n = RetrieveChecked(*b, keys, src);
  EXPECT_LT(Seconds(t0), kBoundSeconds);
  EXPECT_LT(n, kChunks) << "chunks on the hung node cannot have been read";
  TempDir dir_c;
  auto c = OpenPool(dir_c.path());
  ASSERT_TRUE(c);
  t0 = steady_clock::now();
  EXPECT_LT(c->Lookup(keys), kChunks);
  EXPECT_LT(Seconds(t0), kBoundSeconds);
  cluster_->Cont(port);
  ASSERT_TRUE(cluster_->WaitHealthy());
  // Healed: another pool reads what is still published (chunks whose read
  // failed were unpublished, as a missing or damaged chunk would be).
  TempDir dir_d;
  auto d = OpenPool(dir_d.path());
  ASSERT_TRUE(d);
  const size_t found = d->Lookup(keys);
  EXPECT_GE(found, n);
  EXPECT_EQ(RetrieveChecked(*d, keys, src), found);
}

TEST_F(RemoteFaultTest, KeysEvictedUnderMaxmemoryAreMisses) {
  const std::vector<int> masters = cluster_->Masters();
  for (int port : cluster_->ports()) {
    cluster_->NodeCli(port, {"CONFIG", "SET", "maxmemory-policy", "allkeys-lru"});
    cluster_->NodeCli(port, {"CONFIG", "SET", "maxmemory", "6mb"});
  }
  // 96 chunks x 4 layers x 64 KiB = 24 MiB over three 6 MiB masters.
  const auto keys = MakeKeys(shape_, 96, 13);
  KvData src(shape_, keys.size(), 13);
  TempDir a_dir;
  auto a = OpenPool(a_dir.path());
  ASSERT_TRUE(a);
  ASSERT_EQ(*OffloadSync(*a, keys, src.ConstView()), keys.size());
  uint64_t evicted = 0;
  for (int port : masters) {
    const std::string info = cluster_->NodeCli(port, {"INFO", "stats"});
    const size_t at = info.find("evicted_keys:");
    if (at != std::string::npos) evicted += std::stoull(info.substr(at + 13));
  }
  EXPECT_GT(evicted, 0u) << "the cluster evicted nothing: the test does not test eviction";
  TempDir b_dir;
  auto b = OpenPool(b_dir.path());
  ASSERT_TRUE(b);
  const size_t found = b->Lookup(keys);
  const size_t read = RetrieveChecked(*b, keys, src);
  EXPECT_LE(read, found);
  EXPECT_LT(read, keys.size());
  // The writer still has every chunk at home.
  EXPECT_EQ(RetrieveChecked(*a, keys, src), keys.size());
  for (int port : cluster_->ports()) cluster_->NodeCli(port, {"CONFIG", "SET", "maxmemory", "0"});
}

// Last: it leaves the cluster with one master fewer replica.
TEST_F(RemoteFaultTest, AKilledMasterIsMissesUntilItsReplicaTakesOver) {
  const auto keys = MakeKeys(shape_, kChunks, 14);
  const KvData src = StoreFromA(keys, 14);
  std::this_thread::sleep_for(milliseconds(500));  // replication is asynchronous
  const int port = MasterOf(keys[kChunks / 3]);
  ASSERT_GT(port, 0);
  cluster_->Kill(port);
  TempDir b_dir;
  auto b = OpenPool(b_dir.path());
  ASSERT_TRUE(b);
  auto t0 = steady_clock::now();
  const size_t during = b->Lookup(keys);
  EXPECT_LT(Seconds(t0), kBoundSeconds);
  EXPECT_LT(during, kChunks);
  EXPECT_EQ(RetrieveChecked(*b, keys, src), during);
  ASSERT_TRUE(cluster_->WaitHealthy()) << "the replica did not take over";
  // The same pool, not reopened: its clients follow the new slot map.
  size_t after = 0;
  for (int i = 0; i < 20 && after < kChunks; ++i) {
    after = b->Lookup(keys);
    if (after < kChunks) std::this_thread::sleep_for(milliseconds(250));
  }
  EXPECT_EQ(after, kChunks) << "the promoted replica should hold every chunk";
  EXPECT_EQ(RetrieveChecked(*b, keys, src), kChunks);
}

}  // namespace
}  // namespace kvpool::testing
