// kvpoold and ClientPool: round trips through shared memory (zero-copy) and
// through staging, layer events, tenants (isolation, allow-lists, quotas),
// stats, metrics and `kvpool stat`.
#include <httplib.h>

#include <nlohmann/json.hpp>

#include "daemon_fixture.h"
#include "daemon_options.h"

namespace kvpool::testing {
namespace {

std::unique_ptr<ClientPool> Connect(const DaemonProcess& d, std::string tenant = "default") {
  auto pool = ClientPool::Connect(d.Options(std::move(tenant)));
  EXPECT_TRUE(pool.ok()) << pool.status().ToString();
  return pool.ok() ? std::move(*pool) : nullptr;
}

size_t OffloadAll(Pool& pool, std::span<const ChunkKey> keys, const ConstKvBuffer& src) {
  auto h = pool.Offload(keys, src);
  EXPECT_TRUE(h.ok()) << h.status().ToString();
  auto n = h->Wait();
  EXPECT_TRUE(n.ok()) << n.status().ToString();
  return n.ok() ? *n : 0;
}

TEST(Daemon, ZeroCopyRoundTripWithLayerEvents) {
  TempDir dir;
  DaemonProcess d(dir);
  d.Start();
  auto pool = Connect(d);
  ASSERT_TRUE(pool);
  EXPECT_EQ(pool->options().shape.Fingerprint(), DaemonTestShape().Fingerprint());
  const size_t chunks = 24;
  auto keys = MakeKeys(DaemonTestShape(), chunks, 1);
  SharedKv src(*pool, chunks, 7), dst(*pool, chunks, 0);
  EXPECT_EQ(OffloadAll(*pool, keys, src.ConstView()), chunks);
  EXPECT_EQ(pool->Lookup(keys), chunks);

  std::vector<std::pair<uint32_t, size_t>> events;
  std::mutex mu;
  auto h = pool->Retrieve(keys, dst.View(), [&](uint32_t l, size_t v) {
    std::lock_guard<std::mutex> lock(mu);
    events.emplace_back(l, v);
  });
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  auto got = h->Wait();
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, chunks);
  EXPECT_TRUE(h->error().ok()) << h->error().ToString();
  EXPECT_TRUE(dst.SameAs(src, chunks));
  ASSERT_EQ(events.size(), DaemonTestShape().layers);
  for (uint32_t l = 0; l < events.size(); ++l) EXPECT_EQ(events[l].first, l);
  ClientStats cs = pool->client_stats();
  EXPECT_GT(cs.zero_copy_bytes, 0u);
  EXPECT_EQ(cs.staged_bytes, 0u);
}

TEST(Daemon, StagedBuffersRoundTripAndWindows) {
  TempDir dir;
  DaemonProcess d(dir);
  d.Start();
  ClientOptions o = d.Options();
  o.shared_bytes = 2 << 20;  // 2 MiB: 96 chunks of 64 KiB need several windows
  o.region_pages = RegionPages::kSmall;
  auto pool = ClientPool::Connect(o);
  ASSERT_TRUE(pool.ok()) << pool.status().ToString();
  EXPECT_EQ((*pool)->client_stats().region_bytes, 2u << 20);
  EXPECT_EQ((*pool)->client_stats().region_huge_bytes, 0u);  // a region that asked for 4 KiB pages
  const size_t chunks = 96;
  auto keys = MakeKeys(DaemonTestShape(), chunks, 2);
  KvData src(DaemonTestShape(), chunks, 3), dst(DaemonTestShape(), chunks);
  EXPECT_EQ(OffloadAll(**pool, keys, src.ConstView()), chunks);
  auto h = (*pool)->Retrieve(keys, dst.View(), {});
  ASSERT_TRUE(h.ok());
  auto got = h->Wait();
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, chunks);
  EXPECT_TRUE(dst.SameAs(src, chunks));
  EXPECT_GT((*pool)->client_stats().staged_bytes, 0u);

  // A part held already (first_chunk) is skipped and counted.
  KvData part(DaemonTestShape(), chunks);
  KvBuffer view = part.View();
  const size_t held = 10;
  for (auto& base : view.layer_base) base += held * view.chunk_stride;
  view.first_chunk = held;
  auto h2 = (*pool)->Retrieve(keys, view, {});
  ASSERT_TRUE(h2.ok());
  EXPECT_EQ(*h2->Wait(), chunks);
}

TEST(Daemon, LostChunksAreMissesAndRemoveWorks) {
  TempDir dir;
  DaemonProcess d(dir);
  d.Start();
  auto pool = Connect(d);
  ASSERT_TRUE(pool);
  auto keys = MakeKeys(DaemonTestShape(), 8, 4);
  SharedKv src(*pool, 8, 5);
  EXPECT_EQ(OffloadAll(*pool, keys, src.ConstView()), 8u);
  std::vector<ChunkKey> tail(keys.begin() + 5, keys.end());
  EXPECT_EQ(pool->Remove(tail), 3u);
  EXPECT_EQ(pool->Lookup(keys), 5u);
  SharedKv dst(*pool, 8, 0);
  auto h = pool->Retrieve(keys, dst.View(), {});
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(*h->Wait(), 5u);
  EXPECT_TRUE(dst.SameAs(src, 5));
  pool->Flush();
}

TEST(Daemon, TenantsAreIsolated) {
  TempDir dir;
  const std::string uid = std::to_string(getuid());
  DaemonProcess d(dir, "[[daemon.tenant]]\nname = \"a\"\nuids = [" + uid + "]\n[[daemon.tenant]]\nname = \"b\"\nuids = [" +
                           uid + "]\n");
  d.Start();
  auto a = Connect(d, "a");
  auto b = Connect(d, "b");
  ASSERT_TRUE(a && b);
  auto keys = MakeKeys(DaemonTestShape(), 4, 6);
  SharedKv src(*a, 4, 9);
  EXPECT_EQ(OffloadAll(*a, keys, src.ConstView()), 4u);
  EXPECT_EQ(a->Lookup(keys), 4u);
  EXPECT_EQ(b->Lookup(keys), 0u) << "tenant b sees tenant a's chunks";
  // FindChild through the daemon, in each tenant's keys: chunk 3 is chunk 2's child.
  const std::span<const ChunkKey> prefix = std::span(keys).first(3);
  const std::vector<ChunkKey> candidates = {keys[0], keys[3]};
  EXPECT_EQ(a->FindChild(prefix, candidates), 1u);
  EXPECT_EQ(a->FindChild(prefix.first(1), candidates), 2u) << "chunk 3 is not chunk 0's child";
  EXPECT_EQ(b->FindChild(prefix, candidates), 2u) << "tenant b finds tenant a's chunk";
  EXPECT_EQ(b->Remove(keys), 0u);
  EXPECT_EQ(a->Lookup(keys), 4u);
  // Each tenant is charged for its own chunks only.
  auto j = nlohmann::json::parse(*b->DaemonStatsJson());
  ASSERT_EQ(j["tenants"].size(), 2u);  // this uid is the daemon's: it sees every tenant
  for (auto& t : j["tenants"]) EXPECT_EQ(t["chunks"].get<uint64_t>(), t["name"] == "a" ? 4u : 0u) << t.dump();
}

TEST(Daemon, RefusesUidsNotAllowedAndUnknownTenants) {
  TempDir dir;
  const std::string other = std::to_string(getuid() + 4242);
  DaemonProcess d(dir, "[[daemon.tenant]]\nname = \"default\"\nuids = [" + std::to_string(getuid()) +
                           "]\n[[daemon.tenant]]\nname = \"locked\"\nuids = [" + other + "]\n");
  d.Start();
  auto refused = ClientPool::Connect(d.Options("locked"));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("uid " + std::to_string(getuid())), std::string::npos)
      << refused.status().ToString();
  auto unknown = ClientPool::Connect(d.Options("nobody"));
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), StatusCode::kNotFound);
  auto pool = Connect(d);
  ASSERT_TRUE(pool);
  auto j = nlohmann::json::parse(*pool->DaemonStatsJson());  // our uid is the daemon's: admin
  bool counted = false;
  for (auto& t : j["tenants"]) counted |= t["name"] == "locked" && t["refused"].get<uint64_t>() == 1;
  EXPECT_TRUE(counted) << j["tenants"].dump();
}

TEST(Daemon, QuotaKeepsTenantWithinItsBytes) {
  TempDir dir;
  // 8 chunks of 4 layers x 16 KiB = 512 KiB.
  DaemonProcess d(dir, "[[daemon.tenant]]\nname = \"default\"\nuids = [" + std::to_string(getuid()) +
                           "]\nquota = \"512KiB\"\n");
  d.Start();
  auto pool = Connect(d);
  ASSERT_TRUE(pool);
  SharedKv src(*pool, 6, 1);
  auto first = MakeKeys(DaemonTestShape(), 6, 10);
  auto second = MakeKeys(DaemonTestShape(), 6, 11);
  EXPECT_EQ(OffloadAll(*pool, first, src.ConstView()), 6u);
  EXPECT_EQ(OffloadAll(*pool, second, src.ConstView()), 6u);
  EXPECT_EQ(pool->Lookup(second), 6u) << "the newest prefix is kept whole";
  EXPECT_LT(pool->Lookup(first), 6u) << "the older prefix paid for it";
  auto j = nlohmann::json::parse(*pool->DaemonStatsJson());
  auto& t = j["tenants"][0];
  EXPECT_LE(t["used_bytes"].get<uint64_t>(), 512u * 1024) << t.dump();
  EXPECT_GE(t["quota_evicted_chunks"].get<uint64_t>(), 4u);
  // An offload larger than the whole quota stores the prefix that fits.
  SharedKv big(*pool, 12, 2);
  auto third = MakeKeys(DaemonTestShape(), 12, 12);
  EXPECT_EQ(OffloadAll(*pool, third, big.ConstView()), 8u);
  EXPECT_EQ(pool->Lookup(third), 8u);
}

TEST(Daemon, MetricsAndStat) {
  TempDir dir;
  DaemonProcess d(dir, "metrics = \"127.0.0.1:0\"\n");
  d.Start();
  auto pool = Connect(d);
  ASSERT_TRUE(pool);
  auto keys = MakeKeys(DaemonTestShape(), 3, 13);
  SharedKv src(*pool, 3, 3);
  EXPECT_EQ(OffloadAll(*pool, keys, src.ConstView()), 3u);
  auto j = nlohmann::json::parse(*pool->DaemonStatsJson());
  ASSERT_TRUE(j.contains("metrics_port"));
  int port = j["metrics_port"];
  httplib::Client http("127.0.0.1", port);
  auto res = http.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_NE(res->body.find("kvpoold_tenant_offloaded_chunks_total{tenant=\"default\"} 3"), std::string::npos)
      << res->body;
  EXPECT_NE(res->body.find("kvpool_pool_device_used_bytes{device=\"ssd0\""), std::string::npos);
  EXPECT_NE(res->body.find("kvpoold_clients 1"), std::string::npos);

  // kvpool stat prints the same live numbers.
  std::string cmd = std::string(KVPOOL_CLI_PATH) + " stat --socket " + d.socket() + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
  EXPECT_EQ(pclose(p), 0) << out;
  EXPECT_NE(out.find("ssd0"), std::string::npos) << out;
  EXPECT_NE(out.find("dram0"), std::string::npos) << out;
  EXPECT_NE(out.find("default"), std::string::npos) << out;
}

TEST(Daemon, ReprobesOnSighup) {
  TempDir dir;
  DaemonProcess d(dir, "", 64, /*probe=*/true);
  d.Start();
  auto pool = Connect(d);
  ASSERT_TRUE(pool);
  auto keys = MakeKeys(DaemonTestShape(), 4, 14);
  SharedKv src(*pool, 4, 4);
  EXPECT_EQ(OffloadAll(*pool, keys, src.ConstView()), 4u);
  d.Kill(SIGHUP);
  uint64_t reprobes = 0;
  for (int i = 0; i < 500 && reprobes == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    reprobes = nlohmann::json::parse(*pool->DaemonStatsJson())["bandwidth_reprobes"].get<uint64_t>();
  }
  EXPECT_EQ(reprobes, 1u) << "SIGHUP did not re-probe";
  for (const DeviceStats& dev : pool->Stats().devices) {
    EXPECT_TRUE(dev.bandwidth_probed) << dev.name;
    EXPECT_GT(dev.solo_gibps, 0) << dev.name << ": no measured bandwidth";
  }
  EXPECT_EQ(pool->Lookup(keys), 4u) << "the daemon serves on after a re-probe";
  SharedKv dst(*pool, 4, 0);
  auto h = pool->Retrieve(keys, dst.View(), {});
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(*h->Wait(), 4u);
  EXPECT_TRUE(dst.SameAs(src, 4));
}

TEST(Daemon, ShippedExampleConfigurationParses) {
  auto o = daemon::LoadDaemonOptions(std::string(KVPOOL_SOURCE_DIR) + "/packaging/kvpoold.toml.example");
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->socket_path, "/run/kvpool/kvpoold.sock");
  EXPECT_EQ(o->socket_mode, 0660u);
  EXPECT_EQ(o->pool.devices.size(), 2u);
  ASSERT_EQ(o->tenants.size(), 1u);
  EXPECT_EQ(o->tenants[0].name, "default");
}

TEST(Daemon, ConfigurationErrorsNameTheField) {
  const std::string pool = "[model]\npreset = \"tiny\"\n[[device]]\nkind = \"dram\"\ncapacity = \"4MiB\"\n";
  struct Case {
    std::string daemon;
    std::string want;
  } cases[] = {
      {"", "daemon.socket is required"},
      {"socket = \"/tmp/x.sock\"\nmax_clients = 0\n", "daemon.max_clients"},
      {"socket = \"/tmp/x.sock\"\nbogus = 1\n", "daemon.bogus is not a known option"},
      {"socket = \"/tmp/x.sock\"\n[[daemon.tenant]]\nname = \"t\"\n", "daemon.tenant[0] allows nobody"},
      {"socket = \"/tmp/x.sock\"\n[[daemon.tenant]]\nname = \"t\"\nuids = [1]\nquota = \"3 parsecs\"\n",
       "daemon.tenant[0].quota"},
      {"socket = \"/tmp/x.sock\"\nmax_region = -1\n", "daemon.max_region"},
  };
  for (const Case& c : cases) {
    auto o = daemon::ParseDaemonOptions(pool + "[daemon]\n" + c.daemon, "test.toml");
    ASSERT_FALSE(o.ok()) << c.daemon;
    EXPECT_NE(o.status().message().find(c.want), std::string::npos) << o.status().ToString();
    EXPECT_NE(o.status().message().find("test.toml"), std::string::npos) << o.status().ToString();
  }
}

TEST(Daemon, OpenPoolTakesEitherTarget) {
  TempDir dir;
  DaemonProcess d(dir);
  d.Start();
  auto remote = OpenPool(d.address());
  ASSERT_TRUE(remote.ok()) << remote.status().ToString();
  EXPECT_NE(dynamic_cast<ClientPool*>(remote->get()), nullptr);
  auto missing = OpenPool(dir.path() + "/no-such.toml");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("no-such.toml"), std::string::npos);
  auto nobody = OpenPool("unix:" + dir.path() + "/no-such.sock");
  ASSERT_FALSE(nobody.ok());
  EXPECT_EQ(nobody.status().code(), StatusCode::kIOError);
}

}  // namespace
}  // namespace kvpool::testing
