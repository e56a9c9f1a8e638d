#include "core/slot_allocator.h"

#include <algorithm>
#include <cassert>

namespace kvpool {

SlotAllocator::SlotAllocator(uint32_t slot_count)
    : capacity_(slot_count), used_(slot_count), free_count_(slot_count) {
  RebuildFreeListLocked();  // not shared yet: no lock needed
}

void SlotAllocator::RebuildFreeListLocked() {
  free_.clear();
  free_.reserve(free_count_);
  // Descending, so that the lowest slot is on top of the stack.
  for (uint32_t i = capacity_; i-- > 0;) {
    if (!used_[i]) free_.push_back(i);
  }
  assert(free_.size() == free_count_);
  stale_ = false;
}

bool SlotAllocator::MarkUsed(uint32_t slot) {
  std::lock_guard<std::mutex> lock(mu_);
  if (slot >= capacity_ || used_[slot]) return false;
  used_[slot] = true;
  --free_count_;
  stale_ = true;  // free_ still lists `slot`; the next Allocate rebuilds it
  return true;
}

uint32_t SlotAllocator::Allocate(uint32_t n, std::vector<uint32_t>* out) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stale_) RebuildFreeListLocked();
  uint32_t take = std::min(n, free_count_);
  for (uint32_t i = 0; i < take; ++i) {
    uint32_t slot = free_.back();
    free_.pop_back();
    used_[slot] = true;
    out->push_back(slot);
  }
  free_count_ -= take;
  return take;
}

void SlotAllocator::Free(uint32_t slot) {
  std::lock_guard<std::mutex> lock(mu_);
  assert(slot < capacity_ && used_[slot]);
  if (slot >= capacity_ || !used_[slot]) return;
  used_[slot] = false;
  ++free_count_;
  if (!stale_) free_.push_back(slot);  // a stale list is rebuilt from used_ anyway
}

uint32_t SlotAllocator::free_slots() const {
  std::lock_guard<std::mutex> lock(mu_);
  return free_count_;
}

}  // namespace kvpool
