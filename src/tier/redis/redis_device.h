// The `redis` device: the remote tier on a Redis Cluster (docs/remote.md).
//
// Keys, for a pool namespace NS (key_prefix + the pool id: model shape and
// tenant salt) and a chunk C (hex):
//   NS:{C}:<layer>   one segment value (remote_format.h)
//   NS:{C}:r         the chunk record, written after every segment
// The hash tag {C} keeps a chunk's segments and record on one cluster node,
// so a node lost or cut off takes whole chunks with it, never parts of many.
// Bandwidth-probe data goes to NS:probe:<nonce>:<slot> (no hash tag: spread
// over the nodes) and expires after two minutes.
#pragma once

#include <memory>

#include <kvpool/keys.h>
#include <kvpool/options.h>

#include "tier/device.h"

namespace kvpool {

// Connects to options.nodes (the first seed that answers gives the slot
// map). IOError naming the seeds when none answers; InvalidArgument for bad
// options.
Result<std::unique_ptr<Device>> OpenRedisDevice(const DeviceOptions& options,
                                                uint32_t segment_payload_bytes,
                                                const ChunkKey& pool_id);

}  // namespace kvpool
