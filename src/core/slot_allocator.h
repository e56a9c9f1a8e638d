// Free-slot bookkeeping of one device. All slots have the same size (the
// model's segment size), so a LIFO free list is exact and O(1).
// Thread-safe; the lock is held only for list updates, never across I/O.
//
// Recovery marks up to every slot of a device used (MarkUsed), so MarkUsed
// is O(1): it only sets the slot's bit and counts it; the free list is
// rebuilt from the bits, once, by the next Allocate (O(capacity)).
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

namespace kvpool {

class SlotAllocator {
 public:
  explicit SlotAllocator(uint32_t slot_count);

  // Takes `slot` out of the free set (recovery at open). Returns false when
  // it was not free (out of range, or already used). O(1). Meant to be called
  // before any Allocate; interleaving it with Allocate stays correct but
  // costs a free-list rebuild per Allocate that follows a MarkUsed.
  bool MarkUsed(uint32_t slot);
  // Appends up to `n` free slots to `out`; returns how many were taken. After
  // construction or MarkUsed, the lowest free slots are handed out first.
  uint32_t Allocate(uint32_t n, std::vector<uint32_t>* out);
  // Returns a used slot. Freeing a slot that is not used is a bug: asserts in
  // debug builds, ignored otherwise.
  void Free(uint32_t slot);

  uint32_t capacity() const { return capacity_; }
  uint32_t free_slots() const;  // O(1)
  uint32_t used_slots() const { return capacity_ - free_slots(); }

 private:
  // Makes free_ hold exactly the slots whose used_ bit is clear. REQUIRES: mu_.
  void RebuildFreeListLocked();

  const uint32_t capacity_;
  mutable std::mutex mu_;
  std::vector<uint32_t> free_;  // stack, top = back; valid unless stale_. guarded by mu_
  std::vector<bool> used_;      // the truth; guards against double frees. guarded by mu_
  uint32_t free_count_;         // slots with used_ clear. guarded by mu_
  bool stale_ = false;          // MarkUsed ran since free_ was built. guarded by mu_
};

}  // namespace kvpool
