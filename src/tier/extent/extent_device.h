// The KV-passthrough extent device: segments at raw offsets of one
// preallocated file or block device, always O_DIRECT, driven by io_uring
// (registered buffers, fixed file) or psync. Persistent: a superblock, one
// 4 KiB header per slot and A/B checkpoints of the slot table let a restart
// (clean or not) recover every intact segment. docs/format.md has the
// on-device format and the crash guarantees.
#pragma once

#include <chrono>
#include <memory>

#include <kvpool/options.h>
#include <kvpool/result.h>

#include "format/layout.h"
#include "tier/device.h"
#include "tier/extent/block_target.h"

namespace kvpool {

// Opens (creating and preallocating when missing) the extent at
// options.path for segments of `segment_payload_bytes`, owned by pool
// `pool_id`, and recovers the segments it holds (Device::TakeRecovered).
// Errors, each naming the device and path:
//   InvalidArgument  no path; a filesystem without real O_DIRECT (tmpfs);
//                    an extent of another pool or geometry, or a non-empty
//                    file that is not an extent (unless options.reformat)
//   NoSpace          the filesystem or block device is too small (checked
//                    before anything is written)
//   Unsupported      engine "uring" without io_uring (set engine = "psync")
//   IOError          everything else (including: in use by another process)
Result<std::unique_ptr<Device>> OpenExtentDevice(const DeviceOptions& options,
                                                 uint32_t segment_payload_bytes,
                                                 const ChunkKey& pool_id);

// Knobs that are not options: tests shorten the checkpoint period.
struct ExtentTuning {
  // The background thread checkpoints a changed slot table this often.
  std::chrono::milliseconds checkpoint_interval{2000};
};

Result<std::unique_ptr<Device>> OpenExtentDevice(const DeviceOptions& options,
                                                 uint32_t segment_payload_bytes,
                                                 const ChunkKey& pool_id,
                                                 const ExtentTuning& tuning);

// The extent device over any BlockTarget (the SPDK device is this over an
// NVMe namespace): the same format, checksums, checkpoints and recovery.
struct ExtentPlan {
  format::Layout layout;
  DeviceGeometry geometry;
};
// Layout and geometry for these options. InvalidArgument, naming the
// device, when the capacity holds no slot or too many.
Result<ExtentPlan> PlanExtent(const DeviceOptions& options, uint32_t segment_payload_bytes);
// Attaches (or formats) the superblock on `target`, which holds at least
// plan.layout.total_bytes, and recovers its segments. Errors as above.
Result<std::unique_ptr<Device>> OpenExtentOnTarget(const DeviceOptions& options,
                                                   const ExtentPlan& plan,
                                                   std::unique_ptr<BlockTarget> target,
                                                   const ChunkKey& pool_id,
                                                   const ExtentTuning& tuning);

}  // namespace kvpool
