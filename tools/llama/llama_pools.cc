#include "llama_pools.h"

#include <filesystem>

namespace kvpool::cli {
namespace {

DeviceOptions Dram(std::string name, uint64_t bytes) {
  DeviceOptions d;
  d.name = std::move(name);
  d.kind = DeviceKind::kDram;
  d.capacity_bytes = bytes;
  return d;
}

DeviceOptions Extent(const std::string& dir, uint64_t bytes) {
  DeviceOptions d;
  d.name = "ssd0";
  d.kind = DeviceKind::kExtent;
  d.path = dir + "/ssd0.extent";
  d.capacity_bytes = bytes;
  d.engine = "uring";
  return d;
}

DeviceOptions Files(const std::string& dir, uint64_t bytes) {
  DeviceOptions d;
  d.name = "files0";
  d.kind = DeviceKind::kFilePerChunk;
  d.path = dir + "/files0";
  d.capacity_bytes = bytes;
  d.bandwidth_gibps = 1;  // the only device: its weight does not matter
  return d;
}

}  // namespace

Result<PoolOptions> PlanOptions(const PoolPlan& plan, const ModelShape& shape) {
  std::error_code ec;
  std::filesystem::create_directories(plan.dir, ec);
  if (ec) return Status::IOError("cannot create '" + plan.dir + "': " + ec.message());
  PoolOptions o;
  o.shape = shape;
  o.state_dir = plan.state_dir;
  o.probe_mib = 32;
  const uint64_t ssd = RoundUp(plan.ssd_bytes, 64ull << 20);
  if (plan.system == "kvpool" || plan.system == "kvpool-large-dram") {
    const uint64_t half = RoundUp(plan.dram_bytes / 2, 1 << 20);
    if (half > 0) {
      o.devices.push_back(Dram("dram0", half));
      o.devices.push_back(Dram("dram1", half));
    }
    o.devices.push_back(Extent(plan.dir, ssd));
  } else if (plan.system == "extent-only") {
    o.devices.push_back(Extent(plan.dir, ssd));
  } else if (plan.system == "file") {
    o.devices.push_back(Files(plan.dir, ssd));
  } else {
    return Status::InvalidArgument("unknown system '" + plan.system +
                                   "' (kvpool, kvpool-large-dram, extent-only, file)");
  }
  return o;
}

Result<std::unique_ptr<Pool>> OpenPoolWithFallback(PoolOptions options, std::string* engine) {
  *engine = "uring";
  Result<std::unique_ptr<Pool>> pool = Pool::Open(options);
  if (pool.ok() || pool.status().code() != StatusCode::kUnsupported) return pool;
  for (DeviceOptions& d : options.devices) {
    if (d.kind == DeviceKind::kExtent) d.engine = "psync";
  }
  *engine = "psync (io_uring unavailable: " + pool.status().message() + ")";
  return Pool::Open(options);
}

}  // namespace kvpool::cli
