// Pool::Open: fills option defaults, opens every device and builds the pool.
#include <filesystem>

#include "core/pool_impl.h"
#include "tier/dram_device.h"

namespace kvpool {

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
  ResolveIoThreads(options.devices);
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
