// Free-slot bookkeeping of one device. All slots have the same size (the
// model's segment size), so a LIFO free list is exact and O(1).
// Thread-safe; the lock is held only for list updates, never across I/O.
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

namespace kvpool {

class SlotAllocator {
 public:
  explicit SlotAllocator(uint32_t slot_count);

  // Removes `slot` from the free list (recovery at open). Returns false when
  // it was not free. REQUIRES: called before any Allocate.
  bool MarkUsed(uint32_t slot);
  // Appends up to `n` free slots to `out`; returns how many were taken.
  uint32_t Allocate(uint32_t n, std::vector<uint32_t>* out);
  void Free(uint32_t slot);

  uint32_t capacity() const { return capacity_; }
  uint32_t free_slots() const;
  uint32_t used_slots() const { return capacity_ - free_slots(); }

 private:
  const uint32_t capacity_;
  mutable std::mutex mu_;
  std::vector<uint32_t> free_;        // stack; lowest slots handed out first
  std::vector<bool> used_;            // guards against double frees
};

}  // namespace kvpool
