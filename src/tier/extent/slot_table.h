// The extent device's in-memory slot table: for every slot, whether it holds
// a segment and that segment's header fields (format::SlotEntry). Updated
// by I/O workers when a write completes and by ReleaseSlot; read by the
// checkpointer. Each entry sits behind its own sequence lock, so neither
// side ever waits on a mutex or on another slot: the I/O path takes no lock.
//
// Thread-safety: every method may be called from any thread. Writers of one
// slot are serialized by the pool (a slot has one owner at a time); the
// per-slot lock also makes concurrent writers of one slot safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "format/checkpoint.h"

namespace kvpool {

class SlotTable {
 public:
  explicit SlotTable(uint32_t slots);

  uint32_t size() const { return size_; }
  format::SlotEntry Get(uint32_t slot) const;
  void Set(uint32_t slot, const format::SlotEntry& entry);
  // Marks `slot` free, keeping its last write id (so that its old header is
  // known to be stale). No effect on a slot already free.
  void Release(uint32_t slot);

  // Whether anything changed since the last TakeDirty.
  bool dirty() const { return dirty_.load(std::memory_order_relaxed); }
  bool TakeDirty() { return dirty_.exchange(false, std::memory_order_acq_rel); }
  void MarkDirty() { dirty_.store(true, std::memory_order_release); }

 private:
  static constexpr int kWords = 8;
  struct Cell {
    std::atomic<uint32_t> version{0};  // odd while a writer is inside
    std::atomic<uint64_t> word[kWords] = {};
  };
  uint32_t Lock(Cell& c);  // returns the odd version
  static void Store(Cell& c, const format::SlotEntry& e);

  const uint32_t size_;
  std::unique_ptr<Cell[]> cells_;
  std::atomic<bool> dirty_{false};
};

}  // namespace kvpool
