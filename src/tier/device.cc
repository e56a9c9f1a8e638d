#include "tier/device.h"

#include <string>

#include "config.h"
#include "tier/dram_device.h"
#include "tier/file_device.h"
#include "tier/throttled_device.h"

#if KVPOOL_HAVE_EXTENT
#include "tier/extent/extent_device.h"
#endif

namespace kvpool {

std::string Device::Describe() const {
  return std::string(DeviceKindName(kind())) + " '" + name() + "' " +
         std::to_string(geometry_.slot_count) + " slots x " +
         std::to_string(geometry_.slot_payload_bytes) + " B";
}

namespace {

Result<std::unique_ptr<Device>> OpenBase(const DeviceOptions& options,
                                         uint32_t segment_payload_bytes,
                                         const ChunkKey& pool_id) {
  (void)pool_id;
  switch (options.kind) {
    case DeviceKind::kDram: return OpenDramDevice(options, segment_payload_bytes);
    case DeviceKind::kFilePerChunk: return OpenFilePerChunkDevice(options, segment_payload_bytes);
    case DeviceKind::kExtent:
#if KVPOOL_HAVE_EXTENT
      return OpenExtentDevice(options, segment_payload_bytes, pool_id);
#else
      return Status::Unsupported("device '" + options.name +
                                 "': the extent device is not built in this kvpool");
#endif
    case DeviceKind::kSpdk:
      return Status::Unsupported("device '" + options.name +
                                 "': SPDK support is not built in; install SPDK (see "
                                 "docs/spdk.md) and configure with -DKVPOOL_WITH_SPDK=ON");
  }
  return Status::InvalidArgument("device '" + options.name + "': unknown kind");
}

}  // namespace

Result<std::unique_ptr<Device>> OpenDevice(const DeviceOptions& options,
                                           uint32_t segment_payload_bytes,
                                           const ChunkKey& pool_id) {
  auto device = OpenBase(options, segment_payload_bytes, pool_id);
  if (!device.ok() || options.throttle_gibps <= 0) return device;
  return NewThrottledDevice(std::move(device).value(), options.throttle_gibps);
}

}  // namespace kvpool
