// The remote tier: a store shared by the pools of many machines (docs/remote.md).
//
// A remote device is a Device whose segments are addressed by content, (chunk
// key, layer), not by slot: the pool writes a chunk's segments through the
// device's IoQueue like any other device's, then one *chunk record* (an op
// whose tag.layer is kRecordLayer and whose buffer is EncodeChunkRecord's
// output). A chunk is visible to other pools only once its record is in, and
// its record names every segment's checksum, so a reader that finds a record
// can verify each segment it reads against it.
//
// Slots of a remote device only count what this pool's table indexes; they
// never address remote data.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <kvpool/keys.h>
#include <kvpool/result.h>

namespace kvpool {

// tag.layer of the write op that publishes a chunk record.
inline constexpr uint32_t kRecordLayer = UINT32_MAX;

// A published chunk: its parent and every layer segment's checksum.
struct RemoteChunk {
  ChunkKey key;
  ChunkKey parent;
  std::vector<uint64_t> checksums;  // one per layer
};

class RemoteTier {
 public:
  // The leading chunks of `keys` that are published for a model of `layers`
  // layers, in order: keys[0]'s parent must be `first_parent`, and each next
  // record must name the previous key as parent (a chain that breaks ends
  // the prefix). A key that cannot be asked (timeout, node down) or whose
  // record is damaged ends it too. Any thread; bounded by the device's
  // timeout.
  virtual std::vector<RemoteChunk> FindPrefix(std::span<const ChunkKey> keys,
                                              const ChunkKey& first_parent, uint32_t layers) = 0;
  // A segment of `key` read from the tier was missing or damaged: unpublish
  // the chunk (delete its record) so that no pool adopts it again until a
  // writer stores it whole anew. Best effort, bounded by the timeout; any
  // thread.
  virtual void Invalidate(const ChunkKey& key) = 0;
  // The value of the record op that publishes `chunk` (segments of
  // `segment_bytes`).
  virtual std::string ChunkRecordValue(const RemoteChunk& chunk, uint32_t segment_bytes) const = 0;

 protected:
  ~RemoteTier() = default;
};

}  // namespace kvpool
