// A host-memory region: one anonymous mapping of slot_count x slot bytes,
// optionally in 2 MiB huge pages and bound to a NUMA node. Not persistent.
#pragma once

#include "tier/device.h"

namespace kvpool {

// Expands a dram device with numa_node == kEachNumaNode into one region per
// NUMA node (one unbound region when libnuma sees no NUMA); other devices are
// returned unchanged.
std::vector<DeviceOptions> ExpandNumaRegions(const DeviceOptions& options);

// Replaces io_threads = 0 (automatic) in a pool's expanded device list:
// DRAM regions share the CPUs of this process's affinity mask equally (at
// least 1, at most kMaxAutoDramThreads each); other kinds get 1.
inline constexpr uint32_t kMaxAutoDramThreads = 8;
void ResolveIoThreads(std::vector<DeviceOptions>& devices);

Result<std::unique_ptr<Device>> OpenDramDevice(const DeviceOptions& options,
                                               uint32_t segment_payload_bytes);

}  // namespace kvpool
