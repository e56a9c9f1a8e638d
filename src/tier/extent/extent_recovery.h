// Recovery at open: rebuilds an extent's slot table from its slot headers and
// its newest checkpoint (docs/format.md, "Recovery").
//
// Every slot header is read (4 KiB each, batched at the queue's depth). A
// header that matches its checkpoint entry exactly is trusted; one newer than
// the checkpoint (a higher write id) has its payload read and checksummed
// and is kept only when it verifies; anything else (torn, corrupt, stale,
// from another pool or device, or a bandwidth-probe slot with a zero key)
// is discarded and its slot is free.
#pragma once

#include <cstdint>
#include <vector>

#include <kvpool/result.h>

#include "tier/device.h"
#include "tier/extent/checkpointer.h"
#include "tier/extent/extent_queue.h"
#include "tier/extent/raw_queue.h"

namespace kvpool {

struct RecoveryOutcome {
  std::vector<RecoveredSegment> kept;
  uint64_t next_write_id = 1;  // larger than every write id seen on the device
  uint64_t trusted = 0;        // kept on the checkpoint's word
  uint64_t verified = 0;       // newer than the checkpoint, payload checksum verified
  uint64_t discarded = 0;      // had a header of ours but was not kept
  bool table_changed = false;  // the table differs from the checkpoint
};

// Fills context.table (every slot) from the device. `checkpoint` may be
// null (none valid). IOError when a slot cannot be read.
Result<RecoveryOutcome> RecoverSlots(RawQueue& queue, const ExtentContext& context,
                                     const LoadedCheckpoint* checkpoint);

}  // namespace kvpool
