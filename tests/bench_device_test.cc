// `kvpool bench device` end to end on a small file: every reader reads
// every segment it reports on (the extent's reads are verified by checksum,
// so a reader that put two segments in one buffer at once fails the run),
// and the JSON carries each row's readers, including the extent reading
// into a ring of reused buffers.
#include "bench_device.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "fio.h"
#include "test_util.h"

namespace kvpool::testing {
namespace {

TEST(BenchDeviceTest, EveryReaderReadsAndTheRingKeepsItsDepth) {
  TempDir dir;
  std::ofstream(dir.path() + "/probe") << std::string(1 << 16, 'p');
  auto fio = cli::RunFio({dir.path() + "/probe", 0, 1 << 16, 1 << 16, 1 << 16, 1});
  if (fio.status().code() == StatusCode::kUnsupported) GTEST_SKIP() << fio.status().ToString();

  cli::DeviceBenchOptions o;
  o.dir = dir.path() + "/bench";
  o.mib = 16;
  o.sizes_kib = {256};
  o.depths = {1, 8, 32};  // at 32 the ring (2 x QD buffers) holds all 64 segments
  o.repeats = 1;
  o.json = dir.path() + "/out.json";
  ASSERT_EQ(cli::RunDeviceBench(o), 0);

  nlohmann::json j = nlohmann::json::parse(std::ifstream(o.json));
  ASSERT_EQ(j["rows"].size(), 3u);
  for (const auto& row : j["rows"]) {
    const double qd = row["queue_depth"];
    SCOPED_TRACE("QD " + std::to_string(qd));
    for (const char* reader : {"extent", "extent_ring", "files"}) {
      EXPECT_GT(row[reader]["gibps"].get<double>(), 0) << reader;
    }
    EXPECT_GT(row["fio"]["gibps"].get<double>(), 0);
    for (const char* reader : {"extent", "extent_ring"}) {
      EXPECT_EQ(row[reader]["bounced_reads"].get<uint64_t>(), 0u) << reader;
      const double in_flight = row[reader]["mean_in_flight"];
      EXPECT_GT(in_flight, 0) << reader;
      EXPECT_LE(in_flight, qd + 0.01) << reader;
    }
  }
}

}  // namespace
}  // namespace kvpool::testing
