// A host-memory region: one anonymous mapping of slot_count x slot bytes,
// optionally in 2 MiB huge pages and bound to a NUMA node. Not persistent.
#pragma once

#include "tier/device.h"

namespace kvpool {

// Expands a dram device with numa_node == kEachNumaNode into one region per
// NUMA node (one unbound region when libnuma sees no NUMA); other devices are
// returned unchanged.
std::vector<DeviceOptions> ExpandNumaRegions(const DeviceOptions& options);

Result<std::unique_ptr<Device>> OpenDramDevice(const DeviceOptions& options,
                                               uint32_t segment_payload_bytes);

}  // namespace kvpool
