// The Redis Cluster client (tier/redis/): key hashing, the parsers of what
// nodes send, and routing against a live local 6-node cluster: pipelined
// batches over every master, MOVED and ASK during slot migrations, a hung
// node (timeout), a killed master (failover), and the reply kinds.
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "redis_cluster_fixture.h"
#include "tier/redis/cluster_client.h"
#include "tier/redis/crc16.h"
#include "tier/redis/slot_map.h"

namespace kvpool::redis {
namespace {

using kvpool::testing::RedisCluster;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

long long ElapsedMs(Clock::time_point since) {
  return std::chrono::duration_cast<milliseconds>(Clock::now() - since).count();
}

std::string RandomBytes(std::mt19937_64& rng, size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    const uint64_t v = rng();
    std::memcpy(s.data() + i, &v, std::min<size_t>(8, n - i));
  }
  return s;
}

// ---------------------------------------------------------------- hashing

TEST(RedisCrc16Test, KnownVectorAndHashTags) {
  EXPECT_EQ(Crc16("123456789"), 0x31C3);
  EXPECT_EQ(Crc16(""), 0);
  EXPECT_EQ(KeySlot("{user1000}.following"), KeySlot("{user1000}.followers"));
  EXPECT_EQ(KeySlot("{user1000}.following"), Crc16("user1000") % 16384);
  EXPECT_EQ(KeySlot("foo{}{bar}"), Crc16("foo{}{bar}") % 16384);  // empty tag: whole key
  EXPECT_EQ(KeySlot("foo{{bar}}zap"), Crc16("{bar") % 16384);
  EXPECT_EQ(KeySlot("foo{bar}{zap}"), Crc16("bar") % 16384);      // first tag only
  EXPECT_EQ(KeySlot("foo{bar"), Crc16("foo{bar") % 16384);          // no closing brace
  EXPECT_EQ(KeySlot("foo}bar{"), Crc16("foo}bar{") % 16384);
  // Values Redis documents / computes (redis-cli cluster keyslot).
  EXPECT_EQ(KeySlot("foo"), 12182);
  EXPECT_EQ(KeySlot("bar"), 5061);
}

// ---------------------------------------------------------------- parsers

// Decodes RESP text with hiredis's reader, as the client gets replies.
class Resp {
 public:
  explicit Resp(const std::string& text) {
    redisReader* r = redisReaderCreate();
    EXPECT_EQ(redisReaderFeed(r, text.data(), text.size()), REDIS_OK);
    void* reply = nullptr;
    EXPECT_EQ(redisReaderGetReply(r, &reply), REDIS_OK);
    EXPECT_NE(reply, nullptr) << "incomplete RESP";
    reply_ = static_cast<redisReply*>(reply);
    redisReaderFree(r);
  }
  ~Resp() {
    if (reply_ != nullptr) freeReplyObject(reply_);
  }
  const redisReply* get() const { return reply_; }

 private:
  redisReply* reply_ = nullptr;
};

std::string Bulk(std::string_view s) { return "$" + std::to_string(s.size()) + "\r\n" + std::string(s) + "\r\n"; }
std::string Int(long long v) { return ":" + std::to_string(v) + "\r\n"; }
std::string Arr(size_t n) { return "*" + std::to_string(n) + "\r\n"; }
std::string NodeEntry(std::string_view host, long long port, bool metadata) {
  std::string s = Arr(metadata ? 4 : 3) + Bulk(host) + Int(port) + Bulk("0123456789abcdef");
  if (metadata) s += Arr(2) + Bulk("hostname") + Bulk("node-a");  // Redis 7 metadata (RESP2 map)
  return s;
}

const HostPort kFrom{"10.1.2.3", 7000};

TEST(RedisSlotMapTest, ParsesClusterSlots) {
  const Resp r(Arr(3) +
               Arr(4) + Int(0) + Int(5460) + NodeEntry("127.0.0.1", 30001, true) + NodeEntry("127.0.0.1", 30004, true) +
               Arr(3) + Int(5461) + Int(10922) + NodeEntry("", 30002, false) +  // empty host: the answering node
               Arr(4) + Int(10923) + Int(16383) + NodeEntry("127.0.0.1", 30003, false) + NodeEntry("?", 30006, false));
  auto ranges = ParseClusterSlots(r.get(), kFrom);
  ASSERT_TRUE(ranges.ok()) << ranges.status().ToString();
  ASSERT_EQ(ranges->size(), 3u);
  EXPECT_EQ((*ranges)[0].first, 0);
  EXPECT_EQ((*ranges)[0].last, 5460);
  EXPECT_EQ((*ranges)[0].master.ToString(), "127.0.0.1:30001");
  ASSERT_EQ((*ranges)[0].replicas.size(), 1u);
  EXPECT_EQ((*ranges)[0].replicas[0].ToString(), "127.0.0.1:30004");
  EXPECT_EQ((*ranges)[1].master.ToString(), "10.1.2.3:30002");
  EXPECT_TRUE((*ranges)[2].replicas.empty());  // "?": unknown endpoint, skipped
}

TEST(RedisSlotMapTest, RejectsMalformedClusterSlots) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"not an array", "+OK\r\n"},
      {"empty", Arr(0)},
      {"entry not an array", Arr(1) + Int(5)},
      {"entry too short", Arr(1) + Arr(2) + Int(0) + Int(5)},
      {"slot past 16383", Arr(1) + Arr(3) + Int(0) + Int(16384) + NodeEntry("h", 1, false)},
      {"negative slot", Arr(1) + Arr(3) + Int(-1) + Int(5) + NodeEntry("h", 1, false)},
      {"first > last", Arr(1) + Arr(3) + Int(9) + Int(5) + NodeEntry("h", 1, false)},
      {"slot as string", Arr(1) + Arr(3) + Bulk("0") + Int(5) + NodeEntry("h", 1, false)},
      {"master not an array", Arr(1) + Arr(3) + Int(0) + Int(5) + Bulk("h:1")},
      {"master too short", Arr(1) + Arr(3) + Int(0) + Int(5) + Arr(1) + Bulk("h")},
      {"port as string", Arr(1) + Arr(3) + Int(0) + Int(5) + Arr(2) + Bulk("h") + Bulk("1")},
      {"port 0", Arr(1) + Arr(3) + Int(0) + Int(5) + NodeEntry("h", 0, false)},
      {"port 65536", Arr(1) + Arr(3) + Int(0) + Int(5) + NodeEntry("h", 65536, false)},
      {"host nil", Arr(1) + Arr(3) + Int(0) + Int(5) + Arr(2) + "$-1\r\n" + Int(1)},
      {"replica garbage", Arr(1) + Arr(4) + Int(0) + Int(5) + NodeEntry("h", 1, false) + Int(7)},
      {"only unknown masters", Arr(1) + Arr(3) + Int(0) + Int(5) + NodeEntry("?", 1, false)},
      {"error reply", "-ERR This instance has cluster support disabled\r\n"},
  };
  for (const auto& [what, text] : bad) {
    const Resp r(text);
    auto ranges = ParseClusterSlots(r.get(), kFrom);
    EXPECT_FALSE(ranges.ok()) << what;
    EXPECT_EQ(ranges.status().code(), StatusCode::kIOError) << what;
    EXPECT_NE(ranges.status().message().find("10.1.2.3:7000"), std::string::npos)
        << what << ": " << ranges.status().message();
  }
  EXPECT_FALSE(ParseClusterSlots(nullptr, kFrom).ok());
}

TEST(RedisSlotMapTest, ParsesRedirectsAndAddresses) {
  auto m = ParseRedirect("MOVED 3999 127.0.0.1:6381", kFrom);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->kind, Redirect::Kind::kMoved);
  EXPECT_EQ(m->slot, 3999);
  EXPECT_EQ(m->target.ToString(), "127.0.0.1:6381");
  auto a = ParseRedirect("ASK 16383 :7001", kFrom);  // Redis 7: same host as the answering node
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->kind, Redirect::Kind::kAsk);
  EXPECT_EQ(a->target.ToString(), "10.1.2.3:7001");
  auto v6 = ParseRedirect("MOVED 1 [::1]:7002", kFrom);
  ASSERT_TRUE(v6.has_value());
  EXPECT_EQ(v6->target.host, "::1");
  for (const char* bad : {"MOVED", "MOVED 16384 h:1", "MOVED -1 h:1", "MOVED 1 h", "MOVED 1 h:0",
                          "ASK x h:1", "ASK 1", "WRONGTYPE Operation", "MOVED 1 h:1 extra"}) {
    EXPECT_FALSE(ParseRedirect(bad, kFrom).has_value()) << bad;
  }
  EXPECT_TRUE(ParseHostPort("[::1]:6379").ok());
  EXPECT_EQ(ParseHostPort("localhost:6379")->port, 6379);
  for (const char* bad : {"nohost", "h:0", "h:65536", ":5", "h:", "h:5x", "::1:5", "h:-5"}) {
    auto hp = ParseHostPort(bad);
    ASSERT_FALSE(hp.ok()) << bad;
    EXPECT_EQ(hp.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(hp.status().message().find(bad), std::string::npos) << hp.status().message();
  }
}

TEST(RedisClientOptionsTest, RejectsBadSeeds) {
  for (const char* bad : {"nohost", "127.0.0.1:0", "127.0.0.1:70000"}) {
    ClusterOptions o;
    o.seeds = {"127.0.0.1:6379", bad};
    auto c = ClusterClient::Connect(o);
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument) << c.status().ToString();
    EXPECT_NE(c.status().message().find(bad), std::string::npos) << c.status().ToString();
  }
  ClusterOptions none;
  EXPECT_EQ(ClusterClient::Connect(none).status().code(), StatusCode::kInvalidArgument);
}

// A port nothing listens on (bound, then released).
int UnusedPort() {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(s);
  return ntohs(a.sin_port);
}

TEST(RedisClientOptionsTest, RefusingSeedsAreNamed) {
  ClusterOptions o;
  o.seeds = {"127.0.0.1:" + std::to_string(UnusedPort()), "127.0.0.1:" + std::to_string(UnusedPort())};
  const auto start = Clock::now();
  auto c = ClusterClient::Connect(o);
  EXPECT_LE(ElapsedMs(start), o.timeout.count() + 200);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kIOError);
  for (const std::string& s : o.seeds) {
    EXPECT_NE(c.status().message().find(s), std::string::npos) << c.status().ToString();
  }
}

// ---------------------------------------------------------------- live cluster

class RedisClusterClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { cluster_ = RedisCluster::StartOrSkip().release(); }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override {
    if (cluster_ == nullptr) GTEST_FAIL() << "the Redis Cluster did not start";
    ASSERT_TRUE(cluster_->WaitHealthy()) << "cluster not healthy at test start";
  }

  std::unique_ptr<ClusterClient> Client(milliseconds timeout = milliseconds(500)) {
    ClusterOptions o;
    o.seeds = cluster_->seeds();
    o.timeout = timeout;
    auto c = ClusterClient::Connect(o);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(*c) : nullptr;
  }

  // One command, its reply.
  static Reply Run1(ClusterClient& c, std::vector<std::string_view> args, std::string_view key) {
    std::vector<Command> cmds(1);
    cmds[0].args = std::move(args);
    cmds[0].key = key;
    std::vector<Reply> replies(1);
    c.Execute(cmds, replies);
    return std::move(replies[0]);
  }

  // Moves `slot` from its master to `dst` the way redis-cli --cluster does.
  static void MigrateSlot(int slot, int src, int dst) {
    const std::string s = std::to_string(slot);
    const std::string src_id = cluster_->NodeId(src), dst_id = cluster_->NodeId(dst);
    ASSERT_EQ(cluster_->NodeCli(dst, {"cluster", "setslot", s, "importing", src_id}), "OK");
    ASSERT_EQ(cluster_->NodeCli(src, {"cluster", "setslot", s, "migrating", dst_id}), "OK");
    MigrateKeys(slot, src, dst);
    FinishSlot(slot, dst);
  }
  static void MigrateKeys(int slot, int src, int dst, std::vector<std::string> keys = {}) {
    if (keys.empty()) {
      std::istringstream in(cluster_->NodeCli(src, {"cluster", "getkeysinslot", std::to_string(slot), "1000"}));
      for (std::string k; std::getline(in, k);) keys.push_back(k);
    }
    if (keys.empty()) return;
    std::vector<std::string> args = {"migrate", cluster_->ip(), std::to_string(dst), "", "0", "5000", "keys"};
    args.insert(args.end(), keys.begin(), keys.end());
    ASSERT_EQ(cluster_->NodeCli(src, args), "OK");
  }
  // SETSLOT NODE on every master, the new owner first.
  static void FinishSlot(int slot, int dst) {
    const std::string dst_id = cluster_->NodeId(dst);
    std::vector<int> masters = cluster_->Masters();
    std::stable_partition(masters.begin(), masters.end(), [&](int p) { return p == dst; });
    for (int p : masters) {
      ASSERT_EQ(cluster_->NodeCli(p, {"cluster", "setslot", std::to_string(slot), "node", dst_id}), "OK")
          << "on " << p;
    }
  }
  static int OtherMaster(int port) {
    for (int m : cluster_->Masters()) {
      if (m != port) return m;
    }
    return -1;
  }

  static RedisCluster* cluster_;
};

RedisCluster* RedisClusterClientTest::cluster_ = nullptr;

TEST_F(RedisClusterClientTest, KeySlotMatchesTheCluster) {
  std::mt19937_64 rng(42);
  const int port = cluster_->base_port();
  for (int i = 0; i < 20; ++i) {
    std::string key = "key:" + std::to_string(rng());
    if (i % 4 == 1) key = "{tag" + std::to_string(i) + "}" + key;
    if (i % 4 == 2) key += "{}";
    if (i % 4 == 3) key = "a{{b" + std::to_string(i) + "}}" + key;
    EXPECT_EQ(std::to_string(KeySlot(key)), cluster_->NodeCli(port, {"cluster", "keyslot", key})) << key;
  }
}

TEST_F(RedisClusterClientTest, ConnectLoadsTheSlotMap) {
  auto c = Client();
  ASSERT_NE(c, nullptr);
  std::set<std::string> masters;
  const std::vector<int> owners = cluster_->SlotMasters();
  for (int slot = 0; slot < 16384; ++slot) {
    const std::string node = c->NodeForSlot(static_cast<uint16_t>(slot));
    ASSERT_EQ(node, cluster_->Address(owners[static_cast<size_t>(slot)])) << slot;
    masters.insert(node);
  }
  EXPECT_EQ(masters.size(), 3u);
  EXPECT_EQ(c->NodeForSlot(16384), "");
  // One dead seed among live ones does not matter.
  ClusterOptions o;
  o.seeds = {"127.0.0.1:" + std::to_string(UnusedPort()), cluster_->seeds()[2]};
  EXPECT_TRUE(ClusterClient::Connect(o).ok());
}

TEST_F(RedisClusterClientTest, PipelinedSetGetOverAllMasters) {
  constexpr size_t kKeys = 2000;
  constexpr size_t kValueBytes = 64 << 10;
  auto c = Client(milliseconds(30000));  // generous: sanitizer builds move 128 MiB slowly
  ASSERT_NE(c, nullptr);
  std::mt19937_64 rng(7);
  std::vector<std::string> keys, values;
  std::set<std::string> nodes;
  for (size_t i = 0; i < kKeys; ++i) {
    keys.push_back("pipe:" + std::to_string(i));
    values.push_back(RandomBytes(rng, kValueBytes));
    nodes.insert(c->NodeForSlot(KeySlot(keys.back())));
  }
  EXPECT_EQ(nodes.size(), 3u);

  std::vector<Command> sets(kKeys), gets(kKeys);
  for (size_t i = 0; i < kKeys; ++i) {
    sets[i] = Command{{"SET", keys[i], values[i]}, keys[i]};
    gets[i] = Command{{"GET", keys[i]}, keys[i]};
  }
  std::vector<Reply> replies(kKeys);
  c->Execute(sets, replies);
  for (size_t i = 0; i < kKeys; ++i) {
    ASSERT_TRUE(replies[i].ok()) << keys[i] << ": " << replies[i].status().ToString();
    ASSERT_EQ(replies[i].kind(), ReplyKind::kStatus);
    ASSERT_EQ(replies[i].str(), "OK");
  }
  c->Execute(gets, replies);
  for (size_t i = 0; i < kKeys; ++i) {
    ASSERT_TRUE(replies[i].ok()) << keys[i] << ": " << replies[i].status().ToString();
    ASSERT_EQ(replies[i].kind(), ReplyKind::kString) << keys[i];
    ASSERT_TRUE(replies[i].str() == values[i]) << keys[i] << " differs";
  }
  const auto n = c->counters();
  EXPECT_EQ(n.commands, 2 * kKeys);
  EXPECT_EQ(n.moved + n.asked + n.timeouts + n.connection_errors, 0u);

  // Order is kept per node: a SET then a GET of one key in one batch.
  const std::string key = "pipe:order", v1 = "one", v2 = "two";
  std::vector<Command> batch = {{{"SET", key, v1}, key}, {{"GET", key}, key},
                                {{"SET", key, v2}, key}, {{"GET", key}, key}};
  std::vector<Reply> r(batch.size());
  c->Execute(batch, r);
  EXPECT_EQ(r[1].str(), "one");
  EXPECT_EQ(r[3].str(), "two");
}

TEST_F(RedisClusterClientTest, FollowsMovedAfterASlotMigrated) {
  auto c = Client();
  ASSERT_NE(c, nullptr);
  const std::string key = "moved:key", value = "moved-value";
  ASSERT_EQ(Run1(*c, {"SET", key, value}, key).str(), "OK");
  const int slot = KeySlot(key);
  const int src = cluster_->MasterForSlot(slot);
  const int dst = OtherMaster(src);
  ASSERT_EQ(c->NodeForSlot(static_cast<uint16_t>(slot)), cluster_->Address(src));
  MigrateSlot(slot, src, dst);
  ASSERT_EQ(cluster_->MasterForSlot(slot), dst);

  Reply r = Run1(*c, {"GET", key}, key);  // the map still names src
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r.str(), value);
  EXPECT_GT(c->counters().moved, 0u);
  EXPECT_EQ(c->NodeForSlot(static_cast<uint16_t>(slot)), cluster_->Address(dst));
  const uint64_t moved = c->counters().moved;
  EXPECT_EQ(Run1(*c, {"GET", key}, key).str(), value);
  EXPECT_EQ(c->counters().moved, moved);  // the map was updated
  EXPECT_GT(c->counters().slot_map_refreshes, 0u);
}

TEST_F(RedisClusterClientTest, FollowsAskDuringAMigration) {
  auto c = Client();
  ASSERT_NE(c, nullptr);
  const std::string moved_key = "{ask}moved", staying_key = "{ask}staying";
  ASSERT_EQ(Run1(*c, {"SET", moved_key, "m"}, moved_key).str(), "OK");
  ASSERT_EQ(Run1(*c, {"SET", staying_key, "s"}, staying_key).str(), "OK");
  const int slot = KeySlot(moved_key);
  const int src = cluster_->MasterForSlot(slot);
  const int dst = OtherMaster(src);
  const std::string s = std::to_string(slot);
  ASSERT_EQ(cluster_->NodeCli(dst, {"cluster", "setslot", s, "importing", cluster_->NodeId(src)}), "OK");
  ASSERT_EQ(cluster_->NodeCli(src, {"cluster", "setslot", s, "migrating", cluster_->NodeId(dst)}), "OK");
  MigrateKeys(slot, src, dst, {moved_key});

  Reply r = Run1(*c, {"GET", moved_key}, moved_key);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r.str(), "m");
  EXPECT_GT(c->counters().asked, 0u);
  EXPECT_EQ(c->NodeForSlot(static_cast<uint16_t>(slot)), cluster_->Address(src));  // ASK: map unchanged
  EXPECT_EQ(Run1(*c, {"GET", staying_key}, staying_key).str(), "s");

  // Both keys in one batch: one answered by src, one through ASK by dst.
  std::vector<Command> both = {{{"GET", moved_key}, moved_key}, {{"GET", staying_key}, staying_key}};
  std::vector<Reply> rs(2);
  c->Execute(both, rs);
  EXPECT_EQ(rs[0].str(), "m");
  EXPECT_EQ(rs[1].str(), "s");

  MigrateKeys(slot, src, dst, {staying_key});
  FinishSlot(slot, dst);
  EXPECT_EQ(Run1(*c, {"GET", moved_key}, moved_key).str(), "m");
  EXPECT_EQ(Run1(*c, {"GET", staying_key}, staying_key).str(), "s");
  EXPECT_EQ(c->NodeForSlot(static_cast<uint16_t>(slot)), cluster_->Address(dst));
}

TEST_F(RedisClusterClientTest, HungNodeTimesOut) {
  auto c = Client(milliseconds(500));
  ASSERT_NE(c, nullptr);
  const std::string key = "timeout:key", other = "timeout:other";
  ASSERT_EQ(Run1(*c, {"SET", key, "v"}, key).str(), "OK");
  const int master = cluster_->MasterForSlot(KeySlot(key));
  std::string other_key = other;
  for (int i = 0; cluster_->MasterForSlot(KeySlot(other_key)) == master; ++i) other_key = other + std::to_string(i);
  ASSERT_EQ(Run1(*c, {"SET", other_key, "w"}, other_key).str(), "OK");

  cluster_->Stop(master);
  std::vector<Command> cmds = {{{"GET", key}, key}, {{"GET", other_key}, other_key}};
  std::vector<Reply> r(2);
  const auto start = Clock::now();
  c->Execute(cmds, r);
  const long long elapsed = ElapsedMs(start);
  cluster_->Cont(master);

  EXPECT_LE(elapsed, 500 + 200);
  EXPECT_GE(elapsed, 450);
  EXPECT_EQ(r[0].status().code(), StatusCode::kIOError) << r[0].status().ToString();
  EXPECT_NE(r[0].status().message().find("timeout"), std::string::npos) << r[0].status().ToString();
  EXPECT_NE(r[0].status().message().find(cluster_->Address(master)), std::string::npos)
      << r[0].status().ToString();
  EXPECT_EQ(r[0].kind(), ReplyKind::kNone);
  EXPECT_EQ(r[1].str(), "w");  // the other node answered meanwhile
  EXPECT_EQ(c->counters().timeouts, 1u);

  Reply again = Run1(*c, {"GET", key}, key);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again.str(), "v");
}

TEST_F(RedisClusterClientTest, ReplyKinds) {
  auto c = Client();
  ASSERT_NE(c, nullptr);
  const std::string key = "{kinds}string", missing = "{kinds}missing";
  ASSERT_EQ(Run1(*c, {"SET", key, "hello"}, key).str(), "OK");

  Reply nil = Run1(*c, {"GET", missing}, missing);
  EXPECT_TRUE(nil.ok());
  EXPECT_EQ(nil.kind(), ReplyKind::kNil);

  Reply arr = Run1(*c, {"MGET", key, missing}, key);
  ASSERT_EQ(arr.kind(), ReplyKind::kArray);
  ASSERT_EQ(arr.size(), 2u);
  EXPECT_EQ(arr[0].kind(), ReplyKind::kString);
  EXPECT_EQ(arr[0].str(), "hello");
  EXPECT_EQ(arr[1].kind(), ReplyKind::kNil);
  EXPECT_EQ(arr[2].kind(), ReplyKind::kNone);  // out of range: empty view

  Reply wrong = Run1(*c, {"LPUSH", key, "x"}, key);
  EXPECT_EQ(wrong.kind(), ReplyKind::kError);
  EXPECT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), StatusCode::kIOError);
  EXPECT_NE(wrong.status().message().find("WRONGTYPE"), std::string::npos) << wrong.status().ToString();
  EXPECT_NE(wrong.str().find("WRONGTYPE"), std::string::npos);
  const int master = cluster_->MasterForSlot(KeySlot(key));
  EXPECT_NE(wrong.status().message().find(cluster_->Address(master)), std::string::npos);

  Reply del = Run1(*c, {"DEL", key}, key);
  EXPECT_EQ(del.kind(), ReplyKind::kInteger);
  EXPECT_EQ(del.integer(), 1);
  EXPECT_EQ(Run1(*c, {"DEL", key}, key).integer(), 0);

  Reply none = Run1(*c, {}, key);
  EXPECT_EQ(none.status().code(), StatusCode::kInvalidArgument);

  // A full node: OOM is Busy (retry later), with Redis's text.
  const std::string mm = cluster_->NodeCli(master, {"config", "get", "maxmemory"});
  ASSERT_EQ(cluster_->NodeCli(master, {"config", "set", "maxmemory", "1mb"}), "OK");
  ASSERT_EQ(cluster_->NodeCli(master, {"config", "set", "maxmemory-policy", "noeviction"}), "OK");
  Reply oom = Run1(*c, {"SET", key, std::string(4096, 'x')}, key);
  EXPECT_EQ(cluster_->NodeCli(master, {"config", "set", "maxmemory", "0"}), "OK");
  EXPECT_EQ(oom.status().code(), StatusCode::kBusy) << oom.status().ToString();
  EXPECT_NE(oom.status().message().find("OOM"), std::string::npos) << oom.status().ToString();

  Reply ping = Run1(*c, {"PING"}, "");
  EXPECT_EQ(ping.kind(), ReplyKind::kStatus);
  EXPECT_EQ(ping.str(), "PONG");

  // Moving a Reply keeps the bytes; the moved-from one is empty.
  Reply moved = std::move(arr);
  EXPECT_EQ(moved[0].str(), "hello");
  EXPECT_EQ(arr.kind(), ReplyKind::kNone);  // NOLINT(bugprone-use-after-move): the contract
}

TEST_F(RedisClusterClientTest, ReopensAConnectionTheServerClosed) {
  auto c = Client();
  ASSERT_NE(c, nullptr);
  const std::string key = "reopen:key";
  ASSERT_EQ(Run1(*c, {"SET", key, "v"}, key).str(), "OK");
  const int master = cluster_->MasterForSlot(KeySlot(key));
  // Closes every client connection of that node but redis-cli's own.
  EXPECT_NE(cluster_->NodeCli(master, {"client", "kill", "type", "normal"}), "0");
  std::this_thread::sleep_for(milliseconds(50));
  Reply r = Run1(*c, {"GET", key}, key);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r.str(), "v");
  EXPECT_EQ(c->counters().connection_errors, 0u);
}

TEST_F(RedisClusterClientTest, AuthenticatesAsAnAclUser) {
  for (int p : cluster_->ports()) {
    ASSERT_EQ(cluster_->NodeCli(p, {"acl", "setuser", "kvpool-test", "reset", "on", ">s3cret", "~*", "+@all"}),
              "OK");
  }
  ClusterOptions o;
  o.seeds = {cluster_->seeds()[0]};
  o.user = "kvpool-test";
  o.password = "s3cret";
  auto c = ClusterClient::Connect(o);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  const std::string key = "auth:key";
  EXPECT_EQ(Run1(**c, {"SET", key, "v"}, key).str(), "OK");
  EXPECT_EQ(Run1(**c, {"ACL", "WHOAMI"}, key).str(), "kvpool-test");

  o.password = "wrong";
  auto bad = ClusterClient::Connect(o);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kIOError);
  EXPECT_NE(bad.status().message().find("AUTH failed"), std::string::npos) << bad.status().ToString();
  EXPECT_NE(bad.status().message().find(o.seeds[0]), std::string::npos) << bad.status().ToString();
  for (int p : cluster_->ports()) cluster_->NodeCli(p, {"acl", "deluser", "kvpool-test"});
}

// ---------------------------------------------------------------- failover

// A cluster of its own (the suite's SetUpTestSuite starts a fresh one): this
// test leaves one master dead.
class RedisClusterFailoverTest : public RedisClusterClientTest {};

TEST_F(RedisClusterFailoverTest, KilledMasterFailsOverToItsReplica) {
  constexpr milliseconds kTimeout(500);
  auto c = Client(kTimeout);
  ASSERT_NE(c, nullptr);
  const std::vector<int> owners = cluster_->SlotMasters();
  const int victim = owners[0];
  std::vector<std::string> keys, values;
  for (int i = 0; keys.size() < 50; ++i) {
    std::string k = "failover:" + std::to_string(i);
    if (owners[KeySlot(k)] != victim) continue;
    keys.push_back(k);
    values.push_back("value-" + std::to_string(i) + std::string(1000, 'v'));
  }
  std::vector<Command> sets, gets;
  for (size_t i = 0; i < keys.size(); ++i) {
    sets.push_back(Command{{"SET", keys[i], values[i]}, keys[i]});
    gets.push_back(Command{{"GET", keys[i]}, keys[i]});
  }
  std::vector<Reply> r(keys.size());
  c->Execute(sets, r);
  for (auto& x : r) ASSERT_EQ(x.str(), "OK") << x.status().ToString();
  // The replica has every write (it may still be finishing its first sync).
  long long acked = 0;
  for (int i = 0; i < 40 && acked < 1; ++i) {
    Reply w = Run1(*c, {"WAIT", "1", "400"}, keys[0]);
    ASSERT_EQ(w.kind(), ReplyKind::kInteger) << w.status().ToString();
    acked = w.integer();
  }
  ASSERT_GE(acked, 1) << "the replica of " << victim << " did not acknowledge the writes";

  const uint64_t refreshes = c->counters().slot_map_refreshes;
  cluster_->Kill(victim);

  const auto deadline = Clock::now() + std::chrono::seconds(30);
  int calls = 0, failed_calls = 0;
  bool served = false;
  while (!served && Clock::now() < deadline) {
    const auto start = Clock::now();
    c->Execute(gets, r);
    const long long elapsed = ElapsedMs(start);
    ASSERT_LE(elapsed, kTimeout.count() + 200) << "call " << calls << " blocked";
    ++calls;
    served = std::all_of(r.begin(), r.end(), [](const Reply& x) { return x.ok() && x.kind() == ReplyKind::kString; });
    if (!served) {
      ++failed_calls;
      for (const Reply& x : r) {
        if (!x.ok()) {
          EXPECT_FALSE(x.status().message().empty());
        }
      }
      std::this_thread::sleep_for(milliseconds(100));
    }
  }
  ASSERT_TRUE(served) << "no failover within 30 s after " << calls << " calls";
  EXPECT_GT(failed_calls, 0);  // the first call after the kill cannot reach the dead master
  for (size_t i = 0; i < keys.size(); ++i) EXPECT_TRUE(r[i].str() == values[i]) << keys[i];
  EXPECT_GT(c->counters().slot_map_refreshes, refreshes);
  EXPECT_GT(c->counters().connection_errors, 0u);
  const std::string now_serving = c->NodeForSlot(KeySlot(keys[0]));
  EXPECT_NE(now_serving, cluster_->Address(victim));
  EXPECT_TRUE(cluster_->WaitHealthy());
  EXPECT_EQ(now_serving, cluster_->Address(cluster_->MasterForSlot(KeySlot(keys[0]))));
}

}  // namespace
}  // namespace kvpool::redis
