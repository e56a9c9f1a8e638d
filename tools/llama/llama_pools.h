// Pools for `kvpool llama`: the systems bench-ttft compares, and ask's pool.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <kvpool/pool.h>

namespace kvpool::cli {

// What a pool is made of, for one system under test.
struct PoolPlan {
  std::string system;       // "kvpool", "kvpool-large-dram", "extent-only", "file"
  std::string dir;          // device files go here (created)
  std::string state_dir;    // bandwidth probe cache
  uint64_t dram_bytes = 0;  // kvpool: total over two DRAM regions (0 = none)
  uint64_t ssd_bytes = 0;   // extent file or file-per-chunk directory capacity
};

// kvpool:      two DRAM regions + one extent device (io_uring, O_DIRECT),
//              bandwidths probed at open, placement by bandwidth;
// kvpool-large-dram: the same devices (the caller sizes DRAM to hold it all);
// extent-only: the extent device alone (passthrough, no DRAM);
// file:        one file per chunk through the kernel filesystem, buffered:
//              the path of today's offloading systems (the baseline).
Result<PoolOptions> PlanOptions(const PoolPlan& plan, const ModelShape& shape);

// Pool::Open; an extent device whose io_uring engine is unavailable is
// retried with the psync engine (and *engine says which one runs).
Result<std::unique_ptr<Pool>> OpenPoolWithFallback(PoolOptions options, std::string* engine);

// Rounds up to a multiple of `unit`.
inline uint64_t RoundUp(uint64_t v, uint64_t unit) { return (v + unit - 1) / unit * unit; }

}  // namespace kvpool::cli
