// A second device ceiling beside fio's: plain io_uring O_DIRECT reads that
// land, like a pool's, each in its own place of a large destination. fio
// reads every block into one of queue_depth buffers, which stay hot in the
// TLBs and caches of the guest and, on a VM, of the host.
#pragma once

#include <cstdint>
#include <string>

#include <kvpool/result.h>

namespace kvpool::cli {

struct UringCeilingJob {
  std::string filename;
  uint64_t offset = 0;    // start of the region read
  uint64_t size = 0;      // bytes of the region
  uint64_t io_bytes = 0;  // bytes to read, and the destination's size
  uint32_t block_bytes = 0;
  uint32_t queue_depth = 1;
};

// Reads io_bytes / block_bytes distinct blocks, block-aligned, in a seeded
// random order, from [offset, offset + size) of `filename` with O_DIRECT,
// keeping queue_depth reads in flight. Block k lands at k x block_bytes of a
// destination of io_bytes (2 MiB-aligned, huge-page advised, touched before
// the clock starts: the memory kvpool's device bench reads into). Nothing
// is verified. Returns GiB/s. Errors: InvalidArgument for a job that does
// not fit, IOError naming the file, Unsupported when built without liburing.
Result<double> RunUringCeiling(const UringCeilingJob& job);

}  // namespace kvpool::cli
