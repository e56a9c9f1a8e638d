// The global lookup table: chunk key -> where each of its layer segments
// lives. One table for the whole pool, sharded by key hash; a shard's lock is
// held only for map operations, never across I/O.
//
// A chunk's children (records whose parent key is its key) are counted by
// the pool by key, not here, so that replacing a record never loses them.
//
// Records are shared: a retrieval holds a reference to every chunk it reads,
// so a chunk removed or evicted meanwhile keeps its slots until the read is
// done. The last reference frees the slots through the SlotReleaser.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include <kvpool/keys.h>

namespace kvpool {

// Where one (chunk, layer) segment lives. 16 bytes.
struct SegmentLoc {
  uint32_t slot = 0;
  uint16_t device = 0;
  uint16_t reserved = 0;
  uint64_t checksum = 0;
};
static_assert(sizeof(SegmentLoc) == 16);

class SlotReleaser {
 public:
  virtual void ReleaseSegments(const SegmentLoc* segments, uint32_t count) = 0;

 protected:
  ~SlotReleaser() = default;
};

enum class ChunkState : uint8_t { kWriting = 0, kReady = 1 };

class ChunkRecord {
 public:
  ChunkRecord(const ChunkKey& key, const ChunkKey& parent, uint32_t layers,
              SlotReleaser* releaser);
  ~ChunkRecord();
  ChunkRecord(const ChunkRecord&) = delete;
  ChunkRecord& operator=(const ChunkRecord&) = delete;

  const ChunkKey key;
  const ChunkKey parent;  // zero for a prefix's first chunk
  const uint32_t layers;

  SegmentLoc& segment(uint32_t layer) { return segments_[layer]; }
  const SegmentLoc& segment(uint32_t layer) const { return segments_[layer]; }
  // Segments [0, placed) hold allocated slots; the destructor frees those.
  void set_placed(uint32_t n) { placed_ = n; }

  std::atomic<ChunkState> state{ChunkState::kWriting};
  // The remote tier holds a published copy of every layer, with the same
  // checksums (core/remote.cc). Cleared when a read of it fails.
  std::atomic<bool> remote_copy{false};
  std::atomic<uint64_t> last_access{0};

 private:
  SlotReleaser* releaser_;
  uint32_t placed_ = 0;
  std::unique_ptr<SegmentLoc[]> segments_;
};

using ChunkRef = std::shared_ptr<ChunkRecord>;

class Glt {
 public:
  Glt() = default;

  ChunkRef Find(const ChunkKey& key) const;
  // Inserts `record` unless its key is present. Returns false when present.
  bool InsertIfAbsent(const ChunkRef& record);
  // Erases `key` (only if it maps to `expected`, when given). Returns the
  // erased record, or null.
  ChunkRef Erase(const ChunkKey& key, const ChunkRecord* expected = nullptr);
  // Calls fn on every record, one shard at a time under that shard's lock.
  // fn must not call back into the table. O(chunks): eviction and recovery
  // only, never a per-request path (scans() counts the calls).
  void ForEach(const std::function<void(const ChunkRef&)>& fn) const;
  uint64_t scans() const { return scans_.load(std::memory_order_relaxed); }
  // Removes everything (records free their slots as references drop).
  void Clear();

  size_t size() const;
  // Estimated bytes of table memory: map nodes, records and segment arrays.
  uint64_t MemoryBytes(uint32_t layers) const;

 private:
  static constexpr size_t kShards = 64;
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<ChunkKey, ChunkRef, ChunkKeyHash> map;
  };
  Shard& ShardOf(const ChunkKey& key) const { return shards_[key.hi % kShards]; }

  mutable std::array<Shard, kShards> shards_;
  mutable std::atomic<uint64_t> scans_{0};
};

}  // namespace kvpool
