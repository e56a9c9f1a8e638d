// `kvpool bench device`: cold random reads of segments of 256 KiB, 1 MiB and
// 2 MiB at queue depths 1, 8 and 32 on one extent file, for (a) the extent
// device (KV-passthrough), (b) the file-per-chunk device holding the same
// data, and (c) fio with io_uring + O_DIRECT + registered buffers/file on the
// same file, block size and queue depth, all in one invocation. With
// --spdk-transport, (d) the SPDK device (the same extent format on namespace 1
// of that NVMe controller, through SPDK's user-space driver) joins them; its
// namespace is reformatted, and SPDK's spdk_nvme_perf (when found,
// spdk_perf.h) reads the same namespace alternately with it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kvpool::cli {

struct DeviceBenchOptions {
  std::string dir = ".kvpool/bench-device";  // holds the extent file and the chunk files
  uint64_t mib = 1024;                        // data per segment size
  std::vector<uint32_t> sizes_kib = {256, 1024, 2048};
  std::vector<uint32_t> depths = {1, 8, 32};
  std::string engine = "uring";
  std::string spdk_transport;  // SPDK transport ID; "" = no SPDK column
  int perf_seconds = 3;        // each spdk_nvme_perf run (beside the SPDK device)
  bool zero_copy = true;       // DeviceOptions::zero_copy of the extent and SPDK devices
  int repeats = 3;  // alternating runs of the three readers; medians reported
  bool keep = false;  // keep the files afterwards
  std::string json;
};

int RunDeviceBench(const DeviceBenchOptions& options);

}  // namespace kvpool::cli
