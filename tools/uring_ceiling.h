// A second device ceiling beside fio's: plain io_uring O_DIRECT reads that
// land, like a pool's, each in its own place of a large destination. fio
// reads every block into one of queue_depth buffers, which stay hot in the
// TLBs and caches of the guest and, on a VM, of the host.
#pragma once

#include <kvpool/result.h>

#include "fio.h"

namespace kvpool::cli {

// Runs fio's random-read `job` its own way: reads io_bytes / block_bytes
// distinct blocks, block-aligned, in a seeded random order, from
// [offset, offset + size) of `filename` with O_DIRECT, keeping queue_depth
// reads in flight. Block k lands at k x block_bytes of a destination of
// io_bytes (2 MiB-aligned, huge-page advised, touched before
// the clock starts: the memory kvpool's device bench reads into). Nothing
// is verified. Returns GiB/s. Errors: InvalidArgument for a job that does
// not fit or is not random, IOError naming the file, Unsupported when built without liburing.
Result<double> RunUringCeiling(const FioJob& job);

}  // namespace kvpool::cli
