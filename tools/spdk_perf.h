// Runs SPDK's own benchmark, spdk_nvme_perf, on an NVMe namespace: the
// ceiling the SPDK device is measured against (docs/spdk.md).
#pragma once

#include <cstdint>
#include <string>

#include <kvpool/result.h>

namespace kvpool::cli {

struct SpdkPerfJob {
  std::string transport;  // SPDK transport ID, as in DeviceOptions::transport
  uint32_t block_bytes = 0;
  uint32_t queue_depth = 1;
  int seconds = 3;
};

struct SpdkPerfResult {
  double gibps = 0;
  double gib = 0;           // read in its measured window (gibps x job.seconds)
  double user_seconds = 0;  // spdk_nvme_perf's CPU, start-up included
  double system_seconds = 0;
  double runtime_seconds = 0;  // wall time of the whole command
  std::string command;
};

// Where spdk_nvme_perf is: $KVPOOL_SPDK_DIR/bin, /opt/spdk/bin,
// /usr/local/bin, then $PATH; "" when none has it.
std::string FindSpdkNvmePerf();

// Random reads of job.block_bytes at job.queue_depth over the whole
// namespace for job.seconds, one qpair on one core: the highest CPU (of the
// first 64) this process may run on; start the bench under taskset to keep
// it away from the target's reactor. SPDK's environment without hugepages
// (1 GiB), as kvpool's on NVMe/TCP. Unsupported when spdk_nvme_perf is not
// found, IOError (with the command and the end of its output) when it fails
// or prints no total.
Result<SpdkPerfResult> RunSpdkNvmePerf(const SpdkPerfJob& job);

// The MiB/s of the "Total" line of spdk_nvme_perf's report; negative when
// there is none.
double ParseSpdkPerfMibps(const std::string& report);

}  // namespace kvpool::cli
