// Tests of the workload bench: the trace is what it claims, the baseline
// keeps its files across a restart, and a tiny run verifies every byte,
// restarts every system, and writes valid JSON, CSV and PNG.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "longdoc/lmcache_baseline.h"
#include "test_util.h"
#include "workload/workload_bench.h"
#include "workload/workload_trace.h"

namespace kvpool::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

cli::TraceOptions TinyTrace() {
  cli::TraceOptions t;
  t.documents = 3;
  t.doc_tokens = 1024;
  t.turns = 3;
  t.turn_tokens = 256;
  t.requests = 16;
  t.seed = 7;
  return t;
}

TEST(WorkloadTrace, IsDeterministicZipfSkewedAndTurnsGrowPrompts) {
  cli::TraceOptions t = TinyTrace();
  t.requests = 400;
  auto a = cli::MakeTrace(t), b = cli::MakeTrace(t);
  ASSERT_EQ(a.size(), 400u);
  std::vector<int> per_doc(t.documents, 0);
  std::map<std::pair<uint32_t, uint32_t>, uint32_t> next_turn;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].doc, b[i].doc);
    EXPECT_EQ(a[i].session, b[i].session);
    ++per_doc[a[i].doc];
    uint32_t& expected_turn = next_turn[std::make_pair(a[i].doc, a[i].session)];
    EXPECT_EQ(a[i].turn, expected_turn++) << "request " << i;
    EXPECT_LT(a[i].turn, t.turns);
  }
  EXPECT_GT(per_doc[0], per_doc[1]);
  EXPECT_GT(per_doc[1], per_doc[2]);
  ModelShape shape = *ModelShape::Preset("tiny");
  cli::Prompt first(t, shape, {0, 0, 0}), second(t, shape, {0, 0, 1}), other(t, shape, {0, 1, 0});
  EXPECT_EQ(first.chunks(), 5u);
  EXPECT_EQ(second.chunks(), 6u);
  for (size_t c = 0; c < first.chunks(); ++c) EXPECT_EQ(first.keys()[c], second.keys()[c]);
  for (size_t c = 0; c < 4; ++c) EXPECT_EQ(first.keys()[c], other.keys()[c]) << "the document is shared";
  EXPECT_NE(first.keys()[4], other.keys()[4]) << "turns are per session";
  EXPECT_EQ(first.ChunkSeed(4), second.ChunkSeed(4));
  EXPECT_NE(first.ChunkSeed(4), other.ChunkSeed(4));
}

TEST(LmcacheBaseline, KeepsItsFilesAcrossARestartAndPromotesDiskHits) {
  TempDir dir;
  ModelShape shape = *ModelShape::Preset("tiny");
  const size_t chunk_bytes = shape.SegmentPayloadBytes() * shape.layers;
  cli::LmcacheOptions o{shape, 8 * chunk_bytes, dir.path() + "/disk"};
  o.keep_files = true;
  o.drop_file_cache = true;
  o.promote_disk_hits = true;
  auto keys = MakeKeys(shape, 6, 3);
  KvData src(shape, 6, 4);
  {
    auto base = cli::LmcacheBaseline::Open(o);
    ASSERT_TRUE(base.ok());
    ASSERT_TRUE((*base)->Store(keys, src.ConstView()).ok());
  }
  auto base = cli::LmcacheBaseline::Open(o);  // the restart: an empty CPU tier
  ASSERT_TRUE(base.ok());
  KvData dst(shape, 6);
  auto r = (*base)->Load(keys, dst.View());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->chunks, 6u);
  EXPECT_TRUE(dst.SameAs(src, 6));
  for (const auto& a : (*base)->last_trace()) EXPECT_FALSE(a.from_cpu);
  r = (*base)->Load(keys, dst.View());
  ASSERT_TRUE(r.ok());
  for (const auto& a : (*base)->last_trace()) EXPECT_TRUE(a.from_cpu) << "disk hits were written back";
}

json ReadJson(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in, nullptr, false);
}

const json* FindSystem(const json& j, const std::string& name) {
  for (const auto& s : j["systems"]) {
    if (s["name"] == name) return &s;
  }
  return nullptr;
}

TEST(WorkloadBench, TinyRunVerifiesEveryByteRestartsAndWritesResults) {
  TempDir dir;
  cli::WorkloadOptions o;
  o.trace = TinyTrace();
  o.model = "tiny";
  o.scale = 1;
  o.dram_mib = 0.5;   // 4 chunks of 128 KiB
  o.extent_mib = 16;
  o.dir = dir.path() + "/dev";
  o.out = dir.path() + "/out";
  o.progress = false;
  ASSERT_EQ(cli::RunWorkloadBench(o), 0);

  json j = ReadJson(o.out + "/workload.json");
  ASSERT_FALSE(j.is_discarded()) << "workload.json is not JSON";
  EXPECT_GE(j["config"]["working_set_over_dram"].get<double>(), 4.0);
  ASSERT_EQ(j["systems"].size(), 3u);
  for (const auto& s : j["systems"]) {
    std::string name = s["name"];
    EXPECT_EQ(s["wrong_bytes"].get<uint64_t>(), 0u) << name;
    ASSERT_EQ(s["phases"].size(), 2u) << name;
    EXPECT_EQ(s["phases"][0]["phase"], "before restart");
    EXPECT_EQ(s["phases"][1]["phase"], "after restart");
    uint64_t served = 0;
    for (const auto& p : s["phases"]) served += p["served_chunks"].get<uint64_t>();
    EXPECT_GT(served, 0u) << name << " served no hits";
    EXPECT_GT(s["phases"][0]["chunk_hit_rate"].get<double>(), 0) << name;
  }

  // The baseline: one file per chunk, every chunk of the trace, all layers.
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(o.dir + "/baseline/lmcache")) {
    EXPECT_EQ(e.path().extension(), ".pt");
    EXPECT_EQ(fs::file_size(e.path()), j["config"]["chunk_bytes"].get<uint64_t>());
    ++files;
  }
  EXPECT_EQ(files, j["config"]["working_set_chunks"].get<size_t>());
  const json* base = FindSystem(j, "baseline");
  ASSERT_NE(base, nullptr);
  EXPECT_GT((*base)["phases"][1]["chunk_hit_rate"].get<double>(), 0) << "its files survive a restart";

  // Fails while the pool partitions chunks over DRAM and the extent: a
  // chunk with a segment in DRAM is lost at the restart. With copies every
  // chunk is whole on the extent (16 MiB, 4x the working set: no eviction),
  // so all of them survive and every stored chunk is served.
  const json* kv = FindSystem(j, "kvpool");
  ASSERT_NE(kv, nullptr);
  EXPECT_EQ((*kv)["found_after_restart"].get<uint64_t>(),
            j["config"]["chunks_stored_before_restart"].get<uint64_t>());
  EXPECT_GT((*kv)["phases"][1]["chunk_hit_rate"].get<double>(), 0);
  for (const auto& p : (*kv)["phases"]) {
    EXPECT_EQ(p["served_chunks"], p["stored_chunks"]) << "kvpool (copies) missed a stored chunk, "
                                                      << p["phase"].get<std::string>();
  }

  std::ifstream csv(o.out + "/workload.csv");
  std::string header, line;
  std::getline(csv, header);
  EXPECT_EQ(header.rfind("system,phase,", 0), 0u);
  size_t rows = 0;
  while (std::getline(csv, line)) ++rows;
  EXPECT_EQ(rows, 6u);
  std::ifstream png(o.out + "/workload.png", std::ios::binary);
  char magic[8] = {};
  png.read(magic, 8);
  EXPECT_EQ(std::string(magic + 1, 3), "PNG");
}

TEST(WorkloadBench, RefusesAWorkingSetLargerThanTheExtent) {
  TempDir dir;
  cli::WorkloadOptions o;
  o.trace = TinyTrace();
  o.model = "tiny";
  o.scale = 1;
  o.dram_mib = 0.5;
  o.extent_mib = 1;
  o.dir = dir.path() + "/dev";
  o.out = dir.path() + "/out";
  o.progress = false;
  EXPECT_EQ(cli::RunWorkloadBench(o), 2);
  EXPECT_FALSE(fs::exists(o.out + "/workload.json"));
}

}  // namespace
}  // namespace kvpool::testing
