// A system under test of the workload bench: a KV store that serves a
// request's cached prefix, stores its new chunks, and can be restarted on
// the same files. Two kinds: a kvpool Pool (copies or partition placement)
// and the LMCache-style baseline (tools/longdoc/lmcache_baseline.h).
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include <kvpool/kvpool.h>

#include "../longdoc/lmcache_baseline.h"

namespace kvpool::cli {

// One device's traffic since the system was (re)opened.
struct DeviceIo {
  std::string name;
  std::string kind;
  std::string role;  // "home" / "cache" (pool; "" until the pool reports it)
  uint64_t bytes_read = 0;
  uint64_t bytes_written = 0;
};

// Cumulative since the system was (re)opened.
struct SystemCounters {
  std::vector<DeviceIo> devices;
  uint64_t dram_bytes_served = 0;  // retrieval bytes that came from DRAM
  uint64_t bytes_served = 0;       // retrieval bytes in all (same definition)
};

// Counters of `after` minus `before` (device lists in the same order).
SystemCounters operator-(const SystemCounters& after, const SystemCounters& before);

class WorkloadSystem {
 public:
  virtual ~WorkloadSystem() = default;
  virtual std::string name() const = 0;
  // Looks up the leading cached chunks of `keys` and reads them into `dst`
  // (which covers every chunk of `keys`). Returns the chunks delivered.
  virtual Result<size_t> Load(std::span<const ChunkKey> keys, const KvBuffer& dst) = 0;
  // Stores the whole prompt; `cached` leading chunks were just served by
  // Load, so only the others are new. Returns when they are stored.
  virtual Status Store(std::span<const ChunkKey> keys, const ConstKvBuffer& src, size_t cached) = 0;
  // Closes the system and opens it again on the same files. Returns the
  // chunks found again at open (pool: recovered; baseline: chunk files).
  virtual Result<uint64_t> Restart() = 0;
  // posix_fadvise(DONTNEED) on the system's files (when drop_caches is not permitted).
  virtual void MakeCold() = 0;
  virtual SystemCounters Counters() const = 0;
};

// `options.placement` decides copies or partition.
Result<std::unique_ptr<WorkloadSystem>> OpenPoolWorkloadSystem(std::string name,
                                                               const PoolOptions& options);
// The baseline with its files kept across Restart and dropped from the page
// cache after every write and read, and disk hits written back to its CPU tier.
Result<std::unique_ptr<WorkloadSystem>> OpenBaselineWorkloadSystem(std::string name,
                                                                   const LmcacheOptions& options);

}  // namespace kvpool::cli
