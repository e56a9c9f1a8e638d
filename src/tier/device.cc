#include "tier/device.h"

#include <string>

#include "config.h"
#include "tier/dram_device.h"
#include "tier/file_device.h"
#include "tier/redis/redis_device.h"
#include "tier/throttled_device.h"

#if KVPOOL_HAVE_EXTENT
#include "tier/extent/extent_device.h"
#endif
#if KVPOOL_HAVE_SPDK
#include "tier/spdk/spdk_device.h"
#endif

namespace kvpool {

std::string Device::Describe() const {
  return std::string(DeviceKindName(kind())) + " '" + name() + "' " +
         std::to_string(geometry_.slot_count) + " slots x " +
         std::to_string(geometry_.slot_payload_bytes) + " B";
}

Result<DeviceGeometry> PayloadSlotGeometry(const DeviceOptions& options,
                                           uint32_t segment_payload_bytes) {
  DeviceGeometry g;
  g.slot_payload_bytes = (segment_payload_bytes + 4095u) / 4096u * 4096u;
  uint64_t slots = options.capacity_bytes / g.slot_payload_bytes;
  if (slots == 0 || slots > UINT32_MAX) {
    return Status::InvalidArgument("device '" + options.name + "': capacity_bytes " +
                                   std::to_string(options.capacity_bytes) + " holds " +
                                   std::to_string(slots) + " segments of " +
                                   std::to_string(g.slot_payload_bytes) +
                                   " bytes (needs 1 to 2^32-1)");
  }
  g.slot_count = static_cast<uint32_t>(slots);
  g.capacity_bytes = slots * g.slot_payload_bytes;
  return g;
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
#if KVPOOL_HAVE_SPDK
      return OpenSpdkDevice(options, segment_payload_bytes, pool_id);
#else
      return Status::Unsupported("device '" + options.name +
                                 "': SPDK support is not built in; install SPDK (see "
                                 "docs/spdk.md), put its pkg-config files on PKG_CONFIG_PATH "
                                 "and configure with -DKVPOOL_WITH_SPDK=ON");
#endif
    case DeviceKind::kRedis: return OpenRedisDevice(options, segment_payload_bytes, pool_id);
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
