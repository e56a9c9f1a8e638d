// Runs fio (the device ceiling) on a file and parses its JSON report.
#pragma once

#include <cstdint>
#include <string>

#include <kvpool/result.h>

namespace kvpool::cli {

struct FioJob {
  std::string filename;
  uint64_t offset = 0;       // start of the region read
  uint64_t size = 0;         // bytes of the region
  uint64_t io_bytes = 0;     // bytes to read in total
  uint32_t block_bytes = 0;
  uint32_t queue_depth = 1;
  bool random = true;
};

struct FioResult {
  double gibps = 0;
  double user_seconds = 0;
  double system_seconds = 0;
  double runtime_seconds = 0;
  std::string command;
  bool huge_pages = false;  // fio's buffers were in 2 MiB huge pages
  std::string memory;       // what they were, in words
};

// io_uring, O_DIRECT, registered buffers and file: the same features the
// extent device uses. fio's buffers sit in 2 MiB huge pages when a
// hugetlbfs is mounted with enough free pages (kvpool's own buffers get
// huge pages from THP, which fio cannot ask for); otherwise in malloc'd
// 4 KiB pages, which cost fio on queues with few DMA segments per request
// (virtio-blk: 254, under the 256 pages of 1 MiB). Unsupported when fio is
// not installed.
Result<FioResult> RunFio(const FioJob& job);

}  // namespace kvpool::cli
