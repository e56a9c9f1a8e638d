// The SPDK device's edges. Everywhere: without SPDK, kind = "spdk" is
// Unsupported and says how to enable it; with SPDK, bad transport IDs and an
// unreachable target are errors, never hangs. On a test target
// (KVPOOL_TEST_SPDK_TRANSPORT and KVPOOL_TEST_SPDK_TARGET_PID, set by
// tests/hw/spdk_nvmf_test.sh with KVPOOL_SPDK_TIMEOUT_MS=1000): a paused
// target (SIGSTOP) and a killed one turn into misses and a device error, and
// the pool still closes promptly. The killed-target test runs last.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdlib>

#include "core/pool_impl.h"
#include "extent_test_util.h"
#include "pool_helpers.h"

namespace kvpool::testing {
namespace {

using Seconds = std::chrono::duration<double>;

ModelShape Tiny() { return *ModelShape::Preset("tiny"); }

uint64_t CapacityFor(size_t chunks) {
  return uint64_t{Tiny().SegmentBytes()} * Tiny().layers * chunks;
}

Result<std::unique_ptr<Device>> OpenSpdk(const std::string& transport) {
  return OpenDevice(SpdkOptions("nvme0", transport, CapacityFor(4)), 32768, ChunkKey{1, 2});
}

TEST(SpdkDevice, WithoutSpdkTheKindIsUnsupportedAndSaysHowToEnableIt) {
  if (KVPOOL_HAVE_SPDK) GTEST_SKIP() << "this kvpool has SPDK";
  auto d = OpenSpdk("trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:4420 subnqn:nqn.x");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(d.status().message().find("docs/spdk.md"), std::string::npos) << d.status().ToString();
  EXPECT_NE(d.status().message().find("-DKVPOOL_WITH_SPDK=ON"), std::string::npos);
  EXPECT_NE(d.status().message().find("'nvme0'"), std::string::npos);
}

// libspdk_env_dpdk's constructor installs a SIGBUS handler (PCIe hot
// removal) that would spin on a genuine SIGBUS; kvpool puts the default back.
TEST(SpdkDevice, SigbusKeepsItsDefaultActionWithoutPci) {
  if (!KVPOOL_HAVE_SPDK) GTEST_SKIP() << "built without SPDK";
  struct sigaction sa {};
  ASSERT_EQ(::sigaction(SIGBUS, nullptr, &sa), 0);
  EXPECT_TRUE(sa.sa_handler == SIG_DFL);
}

TEST(SpdkDevice, ATransportThatDoesNotParseIsInvalidArgument) {
  if (!KVPOOL_HAVE_SPDK) GTEST_SKIP() << "built without SPDK";
  for (const char* bad : {"trtype:NOPE traddr:1", "trtype:TCP traddr:127.0.0.1 trsvcid:4420"}) {
    auto d = OpenSpdk(bad);
    ASSERT_FALSE(d.ok()) << bad;
    EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument) << d.status().ToString();
    EXPECT_NE(d.status().message().find(bad), std::string::npos) << d.status().ToString();
  }
}

// A TCP port on 127.0.0.1 with nothing listening.
int ClosedPort() {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t n = sizeof(a);
  ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &n);
  ::close(s);
  return ntohs(a.sin_port);
}

TEST(SpdkDevice, NoTargetIsAnIOErrorNamingTheTransportNotAHang) {
  if (!KVPOOL_HAVE_SPDK) GTEST_SKIP() << "built without SPDK";
  const std::string trid =
      "trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:" + std::to_string(ClosedPort()) +
      " subnqn:nqn.2016-06.io.spdk:none";
  const auto t0 = std::chrono::steady_clock::now();
  auto d = OpenSpdk(trid);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kIOError) << d.status().ToString();
  EXPECT_NE(d.status().message().find(trid), std::string::npos) << d.status().ToString();
  EXPECT_LT(Seconds(std::chrono::steady_clock::now() - t0).count(), 30.0);
}

// --- On a test target ---

pid_t TargetPid() {
  const char* v = std::getenv("KVPOOL_TEST_SPDK_TARGET_PID");
  return v != nullptr ? pid_t(std::atol(v)) : 0;
}

class SpdkFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    KVP_SKIP_WITHOUT_SPDK();
    if (TargetPid() <= 0) GTEST_SKIP() << "KVPOOL_TEST_SPDK_TARGET_PID is not set";
    o_.shape = Tiny();
    o_.devices.push_back(SpdkOptions("nvme0", SpdkTransports()[0], CapacityFor(16)));
    ASSERT_TRUE(WipeSpdk(o_.devices[0]));
  }

  // Opens the pool and stores 8 chunks on the SPDK device.
  std::unique_ptr<Pool> Filled() {
    auto p = Pool::Open(o_);
    EXPECT_TRUE(p.ok()) << p.status().ToString();
    if (!p.ok()) return nullptr;
    auto stored = OffloadSync(**p, keys_, src_.ConstView());
    EXPECT_TRUE(stored.ok() && *stored == 8u) << stored.status().ToString();
    return std::move(p).value();
  }

  // Retrieves the 8 chunks from a device that has gone away: every one must
  // miss, within the command timeout plus slack, and the device must count
  // errors and say it failed.
  void ExpectMissesAndADeviceError(Pool& pool) {
    KvData dst(o_.shape, 8);
    const auto t0 = std::chrono::steady_clock::now();
    RetrieveOutcome r = RetrieveSync(pool, keys_, dst);
    const double secs = Seconds(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(r.valid.ok() ? *r.valid : 0u, 0u);
    EXPECT_LT(secs, 15.0) << "retrieval waited on a dead device";
    PoolStats s = pool.Stats();
    EXPECT_GT(s.devices[0].errors, 0u);
    std::string describe = dynamic_cast<PoolImpl&>(pool).DescribeDevices()[0];
    EXPECT_NE(describe.find("state=failed"), std::string::npos) << describe;
    std::cout << "misses after " << secs << " s; " << describe << "\n";
  }

  PoolOptions o_;
  std::vector<ChunkKey> keys_ = MakeKeys(Tiny(), 8, 71);
  KvData src_{Tiny(), 8, 72};
};

TEST_F(SpdkFaultTest, APausedTargetTimesOutIntoMissesAndTheDataComesBackAfterwards) {
  auto pool = Filled();
  ASSERT_NE(pool, nullptr);
  ASSERT_EQ(::kill(TargetPid(), SIGSTOP), 0);
  ExpectMissesAndADeviceError(*pool);
  const auto t0 = std::chrono::steady_clock::now();
  pool.reset();  // detaches a controller that does not answer
  const double close_secs = Seconds(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(::kill(TargetPid(), SIGCONT), 0);
  EXPECT_LT(close_secs, 5.0) << "closing waited on the paused target";
  auto again = Pool::Open(o_);  // a new controller: the data is all there
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ((*again)->Lookup(keys_), 8u);
  KvData dst(o_.shape, 8);
  RetrieveOutcome r = RetrieveSync(**again, keys_, dst);
  ASSERT_TRUE(r.valid.ok()) << r.valid.status().ToString();
  EXPECT_EQ(*r.valid, 8u);
  EXPECT_TRUE(dst.SameAs(src_, 8));
}

TEST_F(SpdkFaultTest, ZzAKilledTargetTurnsIntoMissesAndTheDeviceStillDetaches) {
  auto pool = Filled();
  ASSERT_NE(pool, nullptr);
  ASSERT_EQ(::kill(TargetPid(), SIGKILL), 0);
  ExpectMissesAndADeviceError(*pool);
  auto later = OffloadSync(*pool, MakeKeys(Tiny(), 4, 73), KvData(Tiny(), 4, 74).ConstView());
  EXPECT_TRUE(!later.ok() || *later < 4u) << "writes to a dead device cannot succeed";
  const auto t0 = std::chrono::steady_clock::now();
  pool.reset();
  EXPECT_LT(Seconds(std::chrono::steady_clock::now() - t0).count(), 5.0);
}

}  // namespace
}  // namespace kvpool::testing
