// A system under test of the long-context bench: somewhere KV is offloaded
// to and loaded back from. All systems move the same bytes between the same
// caller-side layout (one array per layer, chunk-major inside a layer).
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include <kvpool/kvpool.h>

namespace kvpool::cli {

struct LoadResult {
  double seconds = 0;               // request to last byte in host memory
  std::vector<double> layer_ready;  // per layer: seconds until usable
  size_t chunks = 0;                // leading chunks delivered
};

// Per-device work done during one load (or the whole run).
struct DeviceWork {
  std::string name;
  std::string kind;
  uint64_t bytes_read = 0;
  double busy_seconds = 0;
};

class KvSystem {
 public:
  virtual ~KvSystem() = default;
  virtual std::string name() const = 0;
  // Stores the whole prefix and waits until it is stored. Returns seconds.
  virtual Result<double> Store(std::span<const ChunkKey> keys, const ConstKvBuffer& source) = 0;
  // Loads the prefix cold (the caller dropped caches) into `destination`.
  virtual Result<LoadResult> Load(std::span<const ChunkKey> keys, const KvBuffer& destination) = 0;
  // Makes the next load cold where the system caches in the kernel
  // (fadvise per file when drop_caches is not permitted).
  virtual void MakeCold() = 0;
  // Cumulative per-device counters.
  virtual std::vector<DeviceWork> Work() const = 0;
};

// `kvpool` and `pool-fs`: one unified pool (parallel, layer-wise).
Result<std::unique_ptr<KvSystem>> NewPoolSystem(std::string name, const PoolOptions& options);

// `passthrough-only`: single-device pools used as tiers, looked up and read
// one after the other (DRAM tier first, then the extent tier); layer-wise
// only within the last tier.
Result<std::unique_ptr<KvSystem>> NewTieredSystem(std::string name,
                                                  const std::vector<PoolOptions>& tiers);

}  // namespace kvpool::cli
