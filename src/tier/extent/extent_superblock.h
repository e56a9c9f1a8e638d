// Attaching an opened extent to a pool: its superblock decides whether the
// extent is ours (same pool id and geometry: keep its data), someone else's
// (refuse, naming what differs, unless reformat), or blank (format it).
#pragma once

#include <kvpool/options.h>
#include <kvpool/result.h>

#include "format/layout.h"
#include "format/superblock.h"
#include "tier/extent/block_target.h"

namespace kvpool {

// Returns the superblock the extent now has. Formats (new device id, both
// checkpoints erased, superblock written last, each step flushed) when the
// extent was just created, reads as all zeros, or options.reformat is set
// and the superblock is missing, corrupt or describes another pool/geometry.
// Errors: InvalidArgument naming the target's location and the difference
// (nothing was written), NoSpace, IOError.
Result<format::Superblock> AttachSuperblock(BlockTarget& file, const format::Layout& layout,
                                            const DeviceOptions& options, const ChunkKey& pool_id);

}  // namespace kvpool
