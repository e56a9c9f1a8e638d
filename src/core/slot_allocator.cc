#include "core/slot_allocator.h"

#include <algorithm>
#include <cassert>

namespace kvpool {

SlotAllocator::SlotAllocator(uint32_t slot_count) : capacity_(slot_count), used_(slot_count) {
  free_.resize(slot_count);
  for (uint32_t i = 0; i < slot_count; ++i) free_[i] = slot_count - 1 - i;
}

bool SlotAllocator::MarkUsed(uint32_t slot) {
  std::lock_guard<std::mutex> lock(mu_);
  if (slot >= capacity_ || used_[slot]) return false;
  used_[slot] = true;
  auto it = std::find(free_.begin(), free_.end(), slot);
  if (it != free_.end()) free_.erase(it);
  return true;
}

uint32_t SlotAllocator::Allocate(uint32_t n, std::vector<uint32_t>* out) {
  std::lock_guard<std::mutex> lock(mu_);
  uint32_t take = std::min<uint32_t>(n, static_cast<uint32_t>(free_.size()));
  for (uint32_t i = 0; i < take; ++i) {
    uint32_t slot = free_.back();
    free_.pop_back();
    used_[slot] = true;
    out->push_back(slot);
  }
  return take;
}

void SlotAllocator::Free(uint32_t slot) {
  std::lock_guard<std::mutex> lock(mu_);
  assert(slot < capacity_ && used_[slot]);
  if (slot >= capacity_ || !used_[slot]) return;
  used_[slot] = false;
  free_.push_back(slot);
}

uint32_t SlotAllocator::free_slots() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<uint32_t>(free_.size());
}

}  // namespace kvpool
