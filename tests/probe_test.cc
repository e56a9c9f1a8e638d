// Bandwidth probing: contention groups and their joint scaling, a full
// persistent device (probed by reading what is on it, never failing Open),
// the probe cache (both values stored; the old plain-number format still
// read), and `kvpool probe`, which measures without leaving anything behind.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/bandwidth_probe.h"
#include "extent_test_util.h"
#include "pool_helpers.h"
#include "probe.h"
#include "testing/fault_device.h"

namespace kvpool::testing {
namespace {

namespace fs = std::filesystem;

TEST(ScaleForContention, ScalesOnlyWhenTheGroupDeliversLessThanTheSum) {
  EXPECT_EQ(ScaleForContention({2, 2}, 3), (std::vector<double>{1.5, 1.5}));
  EXPECT_EQ(ScaleForContention({1, 3}, 2), (std::vector<double>{0.5, 1.5}));
  EXPECT_EQ(ScaleForContention({1, 3}, 4), (std::vector<double>{1, 3}));    // independent
  EXPECT_EQ(ScaleForContention({1, 3}, 5), (std::vector<double>{1, 3}));    // never raised
  EXPECT_EQ(ScaleForContention({1, 3}, 0), (std::vector<double>{1, 3}));    // no joint figure
  EXPECT_EQ(ScaleForContention({4}, 1), (std::vector<double>{1}));
  EXPECT_TRUE(ScaleForContention({}, 1).empty());
}

TEST(ContentionGroup, ByNumaNodeByDiskOrByName) {
  DeviceOptions dram = DramOptions("d", 1 << 20);
  EXPECT_EQ(ContentionGroup(dram), "mem");
  dram.numa_node = 1;
  EXPECT_EQ(ContentionGroup(dram), "mem:node1");

  TempDir dir;
  DeviceOptions a = ExtentOptions("a", dir.path() + "/a.extent", 1 << 20, "psync");
  DeviceOptions b = FileOptions("b", dir.path() + "/not/yet/made", 1 << 20);
  std::string group = ContentionGroup(a);  // the file does not exist: its directory's disk
  EXPECT_EQ(group.rfind("disk:", 0), 0u) << group;
  EXPECT_EQ(ContentionGroup(b), group);
  std::ofstream(a.path) << "x";
  EXPECT_EQ(ContentionGroup(a), group);

  DeviceOptions spdk = SpdkOptions("nvme7", "trtype:TCP traddr:127.0.0.1", 1 << 20);
  EXPECT_EQ(ContentionGroup(spdk), "nvme7");
}

ModelShape SmallShape() {
  ModelShape s;
  s.name = "probe-test";
  s.layers = 4;
  s.kv_heads = 2;
  s.head_dim = 32;
  s.chunk_tokens = 64;  // 2 x 64 x 2 x 32 x 2 B = 16 KiB per segment
  return s;
}

// Two unbound DRAM regions share the host's memory bandwidth: they are one
// group, probed alone and together; placement never exceeds solo.
TEST(ProbeBandwidths, DramRegionsShareTheMemGroup) {
  PoolOptions o;
  o.shape = SmallShape();
  o.probe_mib = 16;
  o.devices.push_back(DramOptions("dram0", 64 << 20, 0));
  o.devices.push_back(DramOptions("dram1", 64 << 20, 0));
  auto pool = MakePool(o);
  ASSERT_NE(pool, nullptr);
  for (uint16_t d = 0; d < 2; ++d) {
    DeviceRunner& r = pool->runner(d);
    EXPECT_EQ(r.contention_group(), "mem");
    EXPECT_TRUE(r.bandwidth_probed());
    EXPECT_GT(r.solo_bandwidth_gibps(), 0);
    EXPECT_GT(r.bandwidth_gibps(), 0);
    EXPECT_LE(r.bandwidth_gibps(), r.solo_bandwidth_gibps() * (1 + 1e-9));
    EXPECT_EQ(r.slots().used_slots(), 0u) << "probe slots were given back";
  }
}

TEST(ProbeBandwidths, ConfiguredBandwidthIsUsedAsIs) {
  PoolOptions o;
  o.shape = SmallShape();
  o.devices.push_back(DramOptions("dram0", 16 << 20, 3.5));
  o.devices.push_back(DramOptions("dram1", 16 << 20, 0));
  auto pool = MakePool(o);
  ASSERT_NE(pool, nullptr);
  EXPECT_EQ(pool->runner(0).bandwidth_gibps(), 3.5);
  EXPECT_FALSE(pool->runner(0).bandwidth_probed());
  EXPECT_EQ(pool->runner(0).contention_group(), "mem");
  EXPECT_GT(pool->runner(1).bandwidth_gibps(), 0);
  EXPECT_TRUE(pool->runner(1).bandwidth_probed());
}

// A memory probe's pass takes milliseconds, so one disturbed pass must not
// become the device's bandwidth (it would be cached for every later open):
// the first timed pass alone, then the first joint pass, are slowed about a
// hundredfold, and the readings stay those of the undisturbed passes.
TEST(ProbeBandwidths, DisturbedMemoryPassDoesNotBecomeTheBandwidth) {
  constexpr uint64_t kOps = 64;  // probe_mib 1 in 16 KiB segments
  constexpr auto kDelay = std::chrono::milliseconds(5);
  PoolOptions o;
  o.shape = SmallShape();
  ASSERT_EQ(kOps * o.shape.SegmentPayloadBytes(), 1u << 20);
  o.probe_mib = 1;
  o.devices.push_back(DramOptions("dram0", 16 << 20, 0));
  o.devices.push_back(DramOptions("dram1", 16 << 20, 0));
  auto solo_slowed = std::make_shared<FaultPlan>();
  solo_slowed->slow_reads_after = kOps;  // the untimed warm-up pass
  solo_slowed->slow_read_count = kOps;   // then all of the first timed pass
  solo_slowed->read_delay = kDelay;
  auto joint_slowed = std::make_shared<FaultPlan>();
  joint_slowed->slow_reads_after = kOps * 6;  // warm-up and five solo passes
  joint_slowed->slow_read_count = kOps;       // then its part of the first joint pass
  joint_slowed->read_delay = kDelay;
  auto pool = MakePool(o, [&](size_t i, std::unique_ptr<Device> d) {
    return NewFaultDevice(std::move(d), i == 0 ? solo_slowed : joint_slowed);
  });
  ASSERT_NE(pool, nullptr);
  for (const auto& plan : {solo_slowed, joint_slowed}) {
    std::lock_guard<std::mutex> lock(plan->mu);
    EXPECT_EQ(plan->slow_read_count, 0u) << "the probe did not read through the slowed pass";
  }
  // A slowed pass reads 1 MiB in at least 5 ms x 64 / (worker threads):
  // under 0.05 GiB/s. Any undisturbed pass of a memory copy is far above.
  constexpr double kSlowedAtMost = 0.05;
  for (uint16_t d = 0; d < 2; ++d) {
    EXPECT_GT(pool->runner(d).solo_bandwidth_gibps(), 4 * kSlowedAtMost) << "device " << d;
    EXPECT_GT(pool->runner(d).bandwidth_gibps(), 4 * kSlowedAtMost) << "device " << d;
  }
}

nlohmann::json ReadJson(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in, nullptr, false);
}

TEST(ProbeBandwidths, CacheStoresSoloAndPlacementAndReadsTheOldFormat) {
  TempDir dir;
  PoolOptions o;
  o.shape = SmallShape();
  o.state_dir = dir.path();
  o.probe_mib = 8;
  o.devices.push_back(DramOptions("dram0", 32 << 20, 0));
  o.devices.push_back(DramOptions("dram1", 32 << 20, 0));
  const std::string cache_path = dir.path() + "/probe-cache.json";
  double placement0 = 0;
  {
    auto pool = MakePool(o);
    ASSERT_NE(pool, nullptr);
    placement0 = pool->runner(0).bandwidth_gibps();
  }
  nlohmann::json cache = ReadJson(cache_path);
  ASSERT_TRUE(cache.is_object());
  ASSERT_EQ(cache.size(), 2u);
  for (auto& [key, e] : cache.items()) {
    ASSERT_TRUE(e.is_object()) << key;
    EXPECT_GT(e["solo"].get<double>(), 0);
    EXPECT_GT(e["placement"].get<double>(), 0);
    EXPECT_LE(e["placement"].get<double>(), e["solo"].get<double>() * (1 + 1e-9));
    EXPECT_EQ(e["group"], "mem");
    EXPECT_EQ(e["peers"].size(), 1u);
  }
  {  // same group: served from the cache
    auto pool = MakePool(o);
    ASSERT_NE(pool, nullptr);
    EXPECT_EQ(pool->runner(0).bandwidth_gibps(), placement0);
  }

  // The old format (a plain number = solo) for a device alone in its group.
  o.devices.pop_back();
  std::string key;
  for (auto& [k, e] : cache.items()) {
    if (k.find("|dram0|") != std::string::npos) key = k;
  }
  ASSERT_FALSE(key.empty());
  std::ofstream(cache_path) << nlohmann::json{{key, 7.25}}.dump() << "\n";
  auto pool = MakePool(o);
  ASSERT_NE(pool, nullptr);
  EXPECT_EQ(pool->runner(0).bandwidth_gibps(), 7.25);
  EXPECT_EQ(pool->runner(0).solo_bandwidth_gibps(), 7.25);
}

// Fills one extent device to its last slot (capacity = 64 segments = 16
// chunks of 4 layers) with every chunk kept.
PoolOptions FullExtentOptions(const std::string& dir) {
  PoolOptions o;
  o.shape = SmallShape();
  o.high_watermark = 1.0;  // keep every chunk
  o.low_watermark = 0.99;
  o.probe_mib = 4;
  o.devices.push_back(ExtentOptions("ssd0", dir + "/ssd0.extent",
                                    64 * o.shape.SegmentPayloadBytes(), "psync",
                                    /*bandwidth_gibps=*/0));
  return o;  // state_dir empty: no probe cache
}

constexpr size_t kFullChunks = 16;

void FillExtent(const PoolOptions& o) {
  auto pool = MakePool(o);
  ASSERT_NE(pool, nullptr);
  auto keys = MakeKeys(o.shape, kFullChunks, 7);
  KvData data(o.shape, kFullChunks, 8);
  auto stored = OffloadSync(*pool, keys, data.ConstView());
  ASSERT_TRUE(stored.ok()) << stored.status().ToString();
  ASSERT_EQ(*stored, kFullChunks);
  ASSERT_EQ(pool->runner(0).slots().free_slots(), 0u) << "the device should be full";
}

TEST(ProbeBandwidths, FullPersistentDeviceWithoutCacheStillOpens) {
  TempDir dir;
  PoolOptions o = FullExtentOptions(dir.path());
  ASSERT_NO_FATAL_FAILURE(FillExtent(o));
  auto pool = Pool::Open(o);  // used to fail: no free slot to probe with
  ASSERT_TRUE(pool.ok()) << pool.status().ToString();
  PoolStats s = (*pool)->Stats();
  EXPECT_EQ(s.recovered_chunks, kFullChunks);
  ASSERT_EQ(s.devices.size(), 1u);
  EXPECT_GT(s.devices[0].bandwidth_gibps, 0);
  // The data is intact after the probe.
  auto keys = MakeKeys(o.shape, kFullChunks, 7);
  KvData want(o.shape, kFullChunks, 8), got(o.shape, kFullChunks);
  RetrieveOutcome r = RetrieveSync(**pool, keys, got);
  ASSERT_TRUE(r.valid.ok()) << r.valid.status().ToString();
  EXPECT_EQ(*r.valid, kFullChunks);
  EXPECT_TRUE(got.SameAs(want, kFullChunks));
}

// Given the recovered table, a full device is measured by reading the
// segments already on it (what PoolImpl::Create passes after Recover).
TEST(ProbeBandwidths, FullDeviceIsMeasuredByReadingExistingSegments) {
  TempDir dir;
  PoolOptions o = FullExtentOptions(dir.path());
  ASSERT_NO_FATAL_FAILURE(FillExtent(o));
  auto pool = MakePool(o);
  ASSERT_NE(pool, nullptr);
  ASSERT_EQ(pool->runner(0).slots().free_slots(), 0u);
  DeviceRunner* r = &pool->runner(0);
  MeasureSettings settings;
  settings.segment_payload = pool->segment_payload();
  settings.probe_bytes = 1 << 20;
  settings.recovered = &pool->glt();
  std::vector<DeviceProbe> p = MeasureDevices({&r, 1}, settings);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].source, ProbeSource::kExisting) << p[0].note;
  EXPECT_GT(p[0].solo.read_gibps, 0);
  EXPECT_EQ(r->slots().free_slots(), 0u) << "existing segments stay where they are";
  // Without the table there is nothing to read: the default, not a failure.
  settings.recovered = nullptr;
  p = MeasureDevices({&r, 1}, settings);
  EXPECT_EQ(p[0].source, ProbeSource::kDefault);
  EXPECT_EQ(p[0].placement_gibps, kDefaultProbeGibps);
}

// Every regular file under `root` with its size.
std::vector<std::pair<std::string, uintmax_t>> Files(const std::string& root) {
  std::vector<std::pair<std::string, uintmax_t>> out;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.is_regular_file()) out.emplace_back(e.path().string(), e.file_size());
  }
  return out;
}

// `kvpool probe` without --config used to create the default extent (up to
// 8 GiB) in ./.kvpool. Now it probes probe-sized devices in a scratch
// directory and removes them.
TEST(ProbeCli, NoConfigLeavesNothingOfFullSizeBehind) {
  TempDir dir;
  const std::string json_path = dir.path() + "/probe.json";
  const std::string work = dir.path() + "/work";
  fs::create_directories(work);
  char old_cwd[4096];
  ASSERT_NE(::getcwd(old_cwd, sizeof(old_cwd)), nullptr);
  ASSERT_EQ(::chdir(work.c_str()), 0);
  cli::ProbeOptions po;
  po.probe_mib = 4;
  po.json = json_path;
  int rc = cli::RunProbe(po);
  ASSERT_EQ(::chdir(old_cwd), 0);
  ASSERT_EQ(rc, 0);

  EXPECT_FALSE(fs::exists(work + "/.kvpool/ssd0.extent"));
  for (const auto& [path, size] : Files(work)) {
    EXPECT_LE(size, uintmax_t{po.probe_mib} << 20) << path;
  }
  for (const auto& e : fs::directory_iterator(work)) {
    EXPECT_EQ(e.path().filename().string().find(".kvpool-probe-"), std::string::npos)
        << "scratch directory left: " << e.path();
  }

  nlohmann::json j = ReadJson(json_path);
  ASSERT_TRUE(j.contains("devices")) << j.dump();
  EXPECT_NE(j["scratch"].get<std::string>().find(work), std::string::npos) << j["scratch"];
  size_t measured = 0;
  for (const auto& d : j["devices"]) {
    ASSERT_TRUE(d.contains("group")) << d.dump();
    if (d["kind"] == "dram") {
      EXPECT_EQ(d["group"], "mem") << d.dump();
    }
    if (d.contains("error")) {
      std::cout << "not measured: " << d.dump() << "\n";
      continue;
    }
    EXPECT_GT(d["read_gibps"].get<double>(), 0) << d.dump();
    EXPECT_GT(d["placement_gibps"].get<double>(), 0) << d.dump();
    EXPECT_LE(d["placement_gibps"].get<double>(), d["read_gibps"].get<double>() * (1 + 1e-9));
    EXPECT_GT(d.value("live_gibps", 0.0), 0) << "no live figure: " << d.dump();
    ++measured;
  }
  EXPECT_GE(measured, 2u) << "both DRAM regions at least";
}

// With --config, a missing extent file is not created: a probe-sized twin
// beside it is probed and removed.
TEST(ProbeCli, ConfigWithMissingExtentDoesNotCreateIt) {
  TempDir dir;
  const std::string config = dir.path() + "/pool.toml";
  const std::string extent = dir.path() + "/big.extent";
  std::ofstream(config) << "[model]\npreset = \"tiny\"\n\n[[device]]\nname = \"ssd0\"\n"
                           "kind = \"extent\"\nengine = \"psync\"\npath = \""
                        << extent << "\"\ncapacity = \"4GiB\"\n";
  cli::ProbeOptions po;
  po.config = config;
  po.probe_mib = 2;
  po.json = dir.path() + "/probe.json";
  ASSERT_EQ(cli::RunProbe(po), 0);
  EXPECT_FALSE(fs::exists(extent));
  for (const auto& [path, size] : Files(dir.path())) {
    EXPECT_LE(size, uintmax_t{64} << 10) << path << " left behind";  // config and JSON only
  }
  nlohmann::json j = ReadJson(po.json);
  ASSERT_EQ(j["devices"].size(), 1u);
  const auto& d = j["devices"][0];
  EXPECT_FALSE(d.contains("error")) << d.dump();
  EXPECT_EQ(d["group"].get<std::string>().rfind("disk:", 0), 0u) << d.dump();
  EXPECT_GT(d.value("read_gibps", 0.0), 0) << d.dump();
}

}  // namespace
}  // namespace kvpool::testing
