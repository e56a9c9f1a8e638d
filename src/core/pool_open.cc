// Pool::Open: fills option defaults, opens every device and builds the pool.
#include <sched.h>

#include <algorithm>
#include <filesystem>
#include <thread>

#include "core/pool_impl.h"
#include "tier/dram_device.h"

namespace kvpool {
namespace {

constexpr uint32_t kMaxAutoDramThreads = 8;

// CPUs this process may run on (its affinity mask), at least 1.
uint32_t UsableCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) {
    return static_cast<uint32_t>(CPU_COUNT(&set));
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

// Replaces io_threads = 0 (automatic) by its value; see DeviceOptions.
void ResolveIoThreads(std::vector<DeviceOptions>& devices, uint32_t cpus) {
  uint32_t dram_regions = 0;
  for (const DeviceOptions& d : devices) dram_regions += d.kind == DeviceKind::kDram ? 1 : 0;
  const uint32_t per_region =
      std::clamp<uint32_t>(cpus / std::max(1u, dram_regions), 1, kMaxAutoDramThreads);
  for (DeviceOptions& d : devices) {
    if (d.io_threads == 0) d.io_threads = d.kind == DeviceKind::kDram ? per_region : 1;
  }
}

}  // namespace

Result<std::unique_ptr<Pool>> Pool::Open(const PoolOptions& input) {
  PoolOptions options = input;
  std::vector<DeviceOptions> expanded;
  for (size_t i = 0; i < options.devices.size(); ++i) {
    DeviceOptions d = options.devices[i];
    if (d.name.empty()) d.name = std::string(DeviceKindName(d.kind)) + std::to_string(i);
    for (DeviceOptions& e : ExpandNumaRegions(d)) expanded.push_back(std::move(e));
  }
  options.devices = std::move(expanded);
  KVP_RETURN_IF_ERROR(options.Validate());
  ResolveIoThreads(options.devices, UsableCpus());
  if (!options.state_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(options.state_dir, ec);
    if (ec) {
      return Status::InvalidArgument("state_dir '" + options.state_dir +
                                     "' cannot be created: " + ec.message());
    }
  }
  const uint32_t payload = static_cast<uint32_t>(options.shape.SegmentPayloadBytes());
  const ChunkKey pool_id = Namespace::Make(options.shape.Fingerprint(), options.tenant_salt).id;
  std::vector<std::unique_ptr<Device>> devices;
  for (const DeviceOptions& d : options.devices) {
    auto dev = OpenDevice(d, payload, pool_id);
    if (!dev.ok()) return dev.status();
    devices.push_back(std::move(dev).value());
  }
  auto pool = PoolImpl::Create(std::move(options), std::move(devices));
  if (!pool.ok()) return pool.status();
  return std::unique_ptr<Pool>(std::move(pool).value());
}

}  // namespace kvpool
