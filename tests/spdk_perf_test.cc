// `kvpool bench device`'s SPDK ceiling: spdk_nvme_perf's report is read
// from its "Total" line only, and a run that cannot happen is an error,
// never a rate.
#include "spdk_perf.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

namespace kvpool::testing {
namespace {

constexpr char kReport[] =
    "Initialization complete. Launching workers.\n"
    "========================================================\n"
    "                                      Latency(us)\n"
    "Device Information                   :       IOPS      MiB/s    Average        min        "
    "max\n"
    "TCP (addr:127.0.0.1 subnqn:nqn.2016-06.io.spdk:bench) NSID 1 from core  1:    2451.00    "
    "2451.00    3262.63    1788.62   14073.85\n"
    "========================================================\n"
    "Total                                :    9804.00    2451.00    3262.63    1788.62   "
    "14073.85\n";

TEST(SpdkPerf, TheTotalLineGivesMiBPerSecond) {
  EXPECT_DOUBLE_EQ(cli::ParseSpdkPerfMibps(kReport), 2451.0);
}

TEST(SpdkPerf, AReportWithoutATotalIsNotARate) {
  EXPECT_LT(cli::ParseSpdkPerfMibps(""), 0);
  EXPECT_LT(cli::ParseSpdkPerfMibps("spdk_nvme_perf: connect() failed\nTotal : n/a\n"), 0);
  std::string truncated = kReport;
  truncated.resize(truncated.rfind("Total"));
  EXPECT_LT(cli::ParseSpdkPerfMibps(truncated), 0);
}

TEST(SpdkPerf, NoPerfOrNoTargetIsAnErrorNotARate) {
  auto r = cli::RunSpdkNvmePerf(
      {"trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:1 subnqn:nqn.2016-06.io.spdk:none", 1 << 20,
       1, 1});
  ASSERT_FALSE(r.ok());
  if (cli::FindSpdkNvmePerf().empty()) {
    EXPECT_EQ(r.status().code(), StatusCode::kUnsupported) << r.status().ToString();
    EXPECT_NE(r.status().message().find("KVPOOL_SPDK_DIR"), std::string::npos);
  } else {
    EXPECT_EQ(r.status().code(), StatusCode::kIOError) << r.status().ToString();
    EXPECT_NE(r.status().message().find("spdk_nvme_perf"), std::string::npos);
  }
}

}  // namespace
}  // namespace kvpool::testing
