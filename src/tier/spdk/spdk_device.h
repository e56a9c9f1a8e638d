// The SPDK device (kind = "spdk"): KV-passthrough through SPDK's user-space
// NVMe driver. It is the extent device (tier/extent/) over a different
// BlockTarget: namespace 1 of the controller named by options.transport, with
// the SPDK engine (spdk_queue.h) as its data path. Slot format, checksums,
// A/B checkpoints and recovery are the extent device's, byte for byte
// (docs/format.md); offset 0 of the extent is LBA 0 of the namespace.
//
// Built only with SPDK (KVPOOL_HAVE_SPDK); docs/spdk.md says how.
#pragma once

#include <memory>
#include <string>

#include <kvpool/options.h>
#include <kvpool/result.h>

#include "tier/device.h"
#include "tier/extent/block_target.h"
#include "tier/extent/extent_device.h"

namespace kvpool {

// Attaches the controller (bringing up the process-wide SPDK environment on
// first use, spdk_env.h) and opens the extent on its namespace 1. Errors,
// each naming the device and transport: InvalidArgument (bad transport ID,
// no namespace 1, unusable sector format, another pool's extent unless
// options.reformat), NoSpace (the namespace is smaller than the extent),
// IOError (attach failed, the controller failed, DMA memory).
Result<std::unique_ptr<Device>> OpenSpdkDevice(const DeviceOptions& options,
                                               uint32_t segment_payload_bytes,
                                               const ChunkKey& pool_id);
Result<std::unique_ptr<Device>> OpenSpdkDevice(const DeviceOptions& options,
                                               uint32_t segment_payload_bytes,
                                               const ChunkKey& pool_id, const ExtentTuning& tuning);

// Namespace 1 of options.transport as a raw target (tests read and damage
// extents through it while no device has it open).
Result<std::unique_ptr<BlockTarget>> OpenSpdkTarget(const DeviceOptions& options);

// For `kvpool probe`: brings the SPDK environment up (with PCI when `pci`,
// as for PCIe devices) and describes it, or says why it failed.
Result<std::string> ProbeSpdkEnv(bool pci);

}  // namespace kvpool
