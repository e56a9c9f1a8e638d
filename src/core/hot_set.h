// The hot set: which chunks have a DRAM copy (copies mode, docs/design.md).
//
// Every chunk of a pool with home devices lives whole on them; a DRAM copy
// is an extra, droppable replica of all of its layers. The policy is a
// segmented LRU with a memory of evicted keys (2Q-like):
//
//   probation  chunks read at most once: copies made on offload, or on the
//              first read after the copy was lost (a restart, an eviction);
//   protected  chunks read at least twice; LRU; when it outgrows its share
//              its least recent chunk goes back to probation;
//   ghost      keys (no copy) recently dropped from probation, with their
//              read counts, so a chunk read again soon is promoted straight
//              into protected.
//
// A one-off document, however long, only ever displaces probation: the
// chunks that are read again stay. Capacity counts whole-chunk copies.
//
// Thread-safety: every method takes the set's mutex; none blocks on I/O.
// Copies are shared: a retrieval holds the CopyRef it reads, so dropping a
// copy frees its DRAM slots only once no read uses them.
#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include <kvpool/keys.h>

#include "core/glt.h"

namespace kvpool {

// One DRAM copy of every layer of a chunk. Segments may sit on different
// DRAM regions. `ready` turns true once every copy write succeeded; only a
// ready copy is read. The destructor frees the placed slots.
class CopySet {
 public:
  CopySet(uint32_t layers, SlotReleaser* releaser);
  ~CopySet();
  CopySet(const CopySet&) = delete;
  CopySet& operator=(const CopySet&) = delete;

  const uint32_t layers;
  SegmentLoc& segment(uint32_t layer) { return segments_[layer]; }
  const SegmentLoc& segment(uint32_t layer) const { return segments_[layer]; }
  void set_placed(uint32_t n) { placed_ = n; }

  std::atomic<bool> ready{false};
  std::atomic<uint32_t> writes_left{0};  // copy writes not yet completed
  std::atomic<bool> write_failed{false};

 private:
  SlotReleaser* releaser_;
  uint32_t placed_ = 0;
  std::unique_ptr<SegmentLoc[]> segments_;
};

using CopyRef = std::shared_ptr<CopySet>;

class HotSet {
 public:
  // `capacity_chunks` whole-chunk copies; `probation_fraction` of them (at
  // least one) are kept for chunks seen once.
  HotSet(uint64_t capacity_chunks, double probation_fraction);

  // What a retrieval should do about one chunk.
  struct Access {
    CopyRef copy;        // a ready copy to read from, or null
    bool admit = false;  // no copy: make one (MakeRoom, then AttachCopy)
  };

  // A retrieval reads `keys` (a prefix, in order). Counts one read of each,
  // moves chunks between segments (the prefix's head ends most recent), and
  // says per chunk whether to read a copy or to make one: at most
  // min(`max_admit`, max_admit()) chunks are admitted, from the head of the
  // prefix.
  std::vector<Access> NoteRead(const std::vector<ChunkKey>& keys, size_t max_admit);
  // Drops least valuable copies (probation's least recent first, then
  // protected's) until `n` more fit in the capacity. Returns the dropped
  // copies for the caller to release outside any lock.
  std::vector<CopyRef> MakeRoom(size_t n);
  // Gives `key` its new copy (its writes may still be in flight): into
  // probation, or protected when the chunk was read at least twice. Returns
  // the copy it replaces, if any.
  CopyRef AttachCopy(const ChunkKey& key, CopyRef copy);
  // Drops `key`'s copy if it is `copy` (a failed copy write or read); the key
  // stays known, with its read count, as a ghost.
  CopyRef DropCopy(const ChunkKey& key, const CopySet* copy);
  // The chunk left the pool: forget it entirely. Returns its copy, if any.
  CopyRef Forget(const ChunkKey& key);
  // Largest number of chunks one request admits now: what is still free,
  // or probation's share when that is more. Making room for that many never
  // touches protected chunks (protected never outgrows its share, so
  // probation plus free space always holds probation's share), and a
  // request never evicts its own new copies.
  size_t max_admit() const;

  // True when `key` holds a copy whose writes all finished.
  bool HasReadyCopy(const ChunkKey& key) const;

  struct Counts {
    uint64_t probation = 0;    // chunks in probation with a copy or admitted
    uint64_t protected_ = 0;   // chunks in protected
    uint64_t ghosts = 0;
    uint64_t copies = 0;       // chunks holding a copy
  };
  Counts counts() const;
  uint64_t capacity() const { return capacity_; }

 private:
  enum class Segment : uint8_t { kProbation, kProtected, kGhost };
  struct Entry {
    Segment segment = Segment::kProbation;
    uint32_t reads = 0;
    CopyRef copy;
    std::list<ChunkKey>::iterator pos;
  };
  using Map = std::unordered_map<ChunkKey, Entry, ChunkKeyHash>;

  std::list<ChunkKey>& ListOf(Segment s);
  void MoveTo(Map::iterator it, Segment to);  // to the most recent end
  // Drops the least recent copy of probation (or of protected when
  // probation has none) to ghost. Returns false when there is none.
  bool EvictOne(std::vector<CopyRef>* dropped);
  // Demotes protected's least recent chunks to probation while protected
  // holds more than its share.
  void BalanceProtected();
  void TrimGhosts();
  size_t AdmitBudgetLocked() const;

  const uint64_t capacity_;
  const uint64_t probation_max_;
  const uint64_t protected_max_;
  mutable std::mutex mu_;
  Map entries_;
  // Front = most recent.
  std::list<ChunkKey> probation_, protected_, ghost_;
  uint64_t copies_ = 0;  // entries holding a copy (guarded by mu_)
};

}  // namespace kvpool
