// A host-memory region: one anonymous mapping of slot_count x slot bytes,
// optionally in 2 MiB huge pages and bound to a NUMA node. Not persistent.
#pragma once

#include "tier/device.h"

namespace kvpool {

Result<std::unique_ptr<Device>> OpenDramDevice(const DeviceOptions& options,
                                               uint32_t segment_payload_bytes);

}  // namespace kvpool
