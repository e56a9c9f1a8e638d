// Tests of the long-context bench itself: the baseline is what it claims
// to be, every system returns the same bytes, a document stored a window
// at a time comes back whole, and a tiny sweep produces valid JSON, CSV and
// PNG files.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>
#include <nlohmann/json.hpp>

#include "host_kv.h"
#include "longdoc/kv_system.h"
#include "longdoc/lmcache_baseline.h"
#include "longdoc/longdoc_bench.h"
#include "test_util.h"

namespace kvpool::testing {
namespace {

namespace fs = std::filesystem;
using cli::LmcacheBaseline;

ModelShape SmallShape() {
  ModelShape s = *ModelShape::Preset("tiny");
  s.chunk_tokens = 64;
  return s;
}

size_t CountFiles(const std::string& dir) {
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(dir)) n += e.is_regular_file() ? 1 : 0;
  return n;
}

TEST(LmcacheBaseline, WritesOneFilePerChunkHoldingAllLayers) {
  TempDir dir;
  ModelShape shape = SmallShape();
  auto base = LmcacheBaseline::Open({shape, 0, dir.path() + "/disk"});
  ASSERT_TRUE(base.ok());
  auto keys = MakeKeys(shape, 12, 3);
  KvData src(shape, 12, 5);
  ASSERT_TRUE((*base)->Store(keys, src.ConstView()).ok());
  EXPECT_EQ(CountFiles(dir.path() + "/disk"), 12u);
  for (const ChunkKey& k : keys) {
    std::string path = (*base)->ChunkPath(k);
    ASSERT_TRUE(fs::exists(path)) << path;
    EXPECT_EQ(fs::file_size(path), shape.SegmentPayloadBytes() * shape.layers);
  }
}

TEST(LmcacheBaseline, ReadsTheCpuTierFirstThenDiskChunkByChunk) {
  TempDir dir;
  ModelShape shape = SmallShape();
  const size_t chunk_bytes = shape.SegmentPayloadBytes() * shape.layers;
  auto base = LmcacheBaseline::Open({shape, 4 * chunk_bytes, dir.path() + "/disk"});
  ASSERT_TRUE(base.ok());
  auto keys = MakeKeys(shape, 10, 4);
  KvData src(shape, 10, 6);
  ASSERT_TRUE((*base)->Store(keys, src.ConstView()).ok());
  KvData dst(shape, 10);
  auto r = (*base)->Load(keys, dst.View());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->chunks, 10u);
  EXPECT_TRUE(dst.SameAs(src, 10));
  const auto& trace = (*base)->last_trace();
  ASSERT_EQ(trace.size(), 10u);
  for (size_t i = 0; i < trace.size(); ++i) {
    EXPECT_EQ(trace[i].chunk, i) << "chunks are served in order, one after the other";
    // LRU kept the 4 most recently stored chunks in host memory.
    EXPECT_EQ(trace[i].from_cpu, i >= 6) << "chunk " << i;
  }
  // Every layer is usable only when the whole load is done.
  for (double t : r->layer_ready) EXPECT_DOUBLE_EQ(t, r->seconds);
}

TEST(LongDocSystems, EverySystemReturnsTheSameBytes) {
  TempDir dir;
  ModelShape shape = SmallShape();
  const size_t chunks = 24;
  const uint64_t seg = shape.SegmentPayloadBytes();
  const uint64_t dram = 6 * seg * shape.layers;  // a quarter of the document
  const uint64_t ssd = 64 * seg * shape.layers;
  auto keys = MakeKeys(shape, chunks, 9);
  KvData src(shape, chunks, 10);

  PoolOptions base;
  base.shape = shape;
  DeviceOptions d0 = DramOptions("dram0", dram / 2, 8), d1 = DramOptions("dram1", dram / 2, 8);
  DeviceOptions ext;
  ext.name = "ssd0";
  ext.kind = DeviceKind::kExtent;
  ext.path = dir.path() + "/ssd0.extent";
  ext.capacity_bytes = ssd;
  ext.bandwidth_gibps = 2;
  ext.reformat = true;
  DeviceOptions files = ext;
  files.name = "files0";
  files.kind = DeviceKind::kFilePerChunk;
  files.path = dir.path() + "/files0";

  std::vector<std::unique_ptr<cli::KvSystem>> systems;
  systems.push_back(std::move(LmcacheBaseline::Open({shape, dram, dir.path() + "/lm"})).value());
  PoolOptions fs_pool = base, kv_pool = base, dram_tier = base, ssd_tier = base;
  fs_pool.devices = {d0, d1, files};
  kv_pool.devices = {d0, d1, ext};
  dram_tier.devices = {DramOptions("dram-tier", dram, 8)};
  ssd_tier.devices = {ext};
  ssd_tier.devices[0].path = dir.path() + "/tier.extent";
  systems.push_back(std::move(cli::NewPoolSystem("pool-fs", fs_pool)).value());
  systems.push_back(std::move(cli::NewTieredSystem("passthrough-only", {dram_tier, ssd_tier})).value());
  systems.push_back(std::move(cli::NewPoolSystem("kvpool", kv_pool)).value());

  for (auto& sys : systems) {
    ASSERT_TRUE(sys->Store(keys, src.ConstView()).ok()) << sys->name();
    KvData dst(shape, chunks);
    sys->MakeCold();
    auto r = sys->Load(keys, dst.View());
    ASSERT_TRUE(r.ok()) << sys->name() << ": " << r.status().ToString();
    EXPECT_EQ(r->chunks, chunks) << sys->name();
    EXPECT_TRUE(dst.SameAs(src, chunks)) << sys->name() << " returned different bytes";
    uint64_t bytes = 0;
    for (const auto& w : sys->Work()) bytes += w.bytes_read;
    EXPECT_GE(bytes, chunks * seg * shape.layers) << sys->name() << " did not read everything";
  }
}

// Options of a bench run on the tiny model at full scale in `dir`, one
// query per document, without a progress bar.
cli::LongDocOptions TinyBench(const TempDir& dir, std::vector<uint64_t> contexts) {
  cli::LongDocOptions o;
  o.model = "tiny";  // 512 B per token
  o.scale = 1;
  o.contexts = std::move(contexts);
  o.repeats = 1;
  o.dir = dir.path() + "/dev";
  o.out = dir.path() + "/out";
  o.progress = false;
  return o;
}

// results.json of a finished run (discarded when it is not JSON).
nlohmann::json ReadResults(const cli::LongDocOptions& o) {
  std::ifstream in(o.out + "/results.json");
  return nlohmann::json::parse(in, nullptr, false);
}

// A window of a prefix is generated on its own, with the bytes of those
// chunks of the whole prefix, and Holds tells one wrong byte apart.
TEST(HostKvWindow, HoldsTheWholePrefixBytesAndNoticesOneFlip) {
  const ModelShape shape = SmallShape();
  cli::HostKv whole(shape, 8, 5);
  cli::HostKv window(shape, 3, 5, 4);
  EXPECT_TRUE(whole.Holds(window, 3));
  EXPECT_EQ(window.ConstView().first_chunk, 4u);
  EXPECT_EQ(std::memcmp(window.ConstView().Segment(4, 1), whole.ConstView().Segment(4, 1),
                        shape.SegmentPayloadBytes()), 0);
  EXPECT_FALSE(whole.Holds(cli::HostKv(shape, 3, 6, 4), 3)) << "another seed, other bytes";
  whole.Segment(5, shape.layers - 1)[17] ^= std::byte{1};
  EXPECT_FALSE(whole.Holds(window, 3));
}

// Documents stored three chunks at a time (a window that does not divide
// them) come back whole from every system, and each cell's data is gone
// from the bench directory once it ran.
TEST(LongDocBench, ADocumentStoredWindowByWindowComesBackWhole) {
  TempDir dir;
  cli::LongDocOptions o = TinyBench(dir, {2048});
  o.window_chunks = 3;
  ASSERT_EQ(cli::RunLongDocBench(o), 0);
  nlohmann::json j = ReadResults(o);
  ASSERT_FALSE(j.is_discarded()) << "results.json is not JSON";
  ASSERT_EQ(j["cells"].size(), o.systems.size());
  for (const auto& c : j["cells"]) EXPECT_TRUE(c["verified"].get<bool>()) << c["system"];
  for (const char* left : {"/ssd0.extent", "/files0", "/lmcache"}) {
    EXPECT_FALSE(fs::exists(o.dir + left)) << left << " left behind";
  }
}

// Stored a window at a time, a document four times larger than DRAM still
// leaves passthrough-only's DRAM tier holding its head (about DRAM's worth,
// read first), as one Store of the whole of it would: later windows must
// neither evict the head nor sit after a gap where no lookup reaches them.
TEST(LongDocBench, AWindowedTieredStoreKeepsTheHeadInTheDramTier) {
  TempDir dir;
  cli::LongDocOptions o = TinyBench(dir, {65536});  // 32 MiB of KV
  o.systems = {"passthrough-only"};
  o.dram_mib = 8;
  o.window_chunks = 16;
  ASSERT_EQ(cli::RunLongDocBench(o), 0);
  nlohmann::json j = ReadResults(o);
  ASSERT_FALSE(j.is_discarded()) << "results.json is not JSON";
  ASSERT_EQ(j["cells"].size(), 1u);
  const auto& cell = j["cells"][0];
  double dram_share = -1;
  for (const auto& d : cell["devices"]) {
    if (d["name"] == "dram-tier") {
      dram_share = d["bytes_read"].get<double>() / cell["kv_bytes"].get<double>();
    }
  }
  EXPECT_GT(dram_share, 0.15) << "the DRAM tier lost the head of the document";
  EXPECT_LE(dram_share, 0.25);
}

// A document larger than the memory left is skipped before anything is
// allocated for it; with nothing left to run, the bench fails.
TEST(LongDocBench, AContextThatCannotFitIsSkipped) {
  TempDir dir;
  cli::LongDocOptions o = TinyBench(dir, {uint64_t{1} << 40});
  EXPECT_EQ(cli::RunLongDocBench(o), 1);
  EXPECT_FALSE(fs::exists(o.dir + "/ssd0.extent"));
}

TEST(LongDocBench, TinySweepWritesJsonCsvAndPng) {
  TempDir dir;
  cli::LongDocOptions o = TinyBench(dir, {1024, 2048});
  o.repeats = 2;
  ASSERT_EQ(cli::RunLongDocBench(o), 0);
  nlohmann::json j = ReadResults(o);
  ASSERT_FALSE(j.is_discarded()) << "results.json is not JSON";
  EXPECT_EQ(j["cells"].size(), 2u * o.systems.size());
  for (const auto& c : j["cells"]) {
    EXPECT_TRUE(c["verified"].get<bool>());
    EXPECT_GT(c["load_median"].get<double>(), 0);
  }
  EXPECT_TRUE(j["config"].contains("machine"));
  std::ifstream csv(o.out + "/results.csv");
  std::string header, line;
  std::getline(csv, header);
  size_t rows = 0;
  while (std::getline(csv, line)) ++rows;
  EXPECT_EQ(rows, 2u * o.systems.size());
  for (const char* png : {"/ttft.png", "/busy.png"}) {
    std::ifstream p(o.out + png, std::ios::binary);
    char magic[8] = {};
    p.read(magic, 8);
    EXPECT_EQ(std::string(magic + 1, 3), "PNG") << png;
  }
}

}  // namespace
}  // namespace kvpool::testing
