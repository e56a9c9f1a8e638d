#include "client/region_allocator.h"

#include <iterator>

namespace kvpool::client {

RegionAllocator::RegionAllocator(uint64_t bytes) : free_bytes_(bytes / kAlignment * kAlignment) {
  if (free_bytes_ > 0) free_[0] = free_bytes_;
}

std::optional<uint64_t> RegionAllocator::AllocateLocked(uint64_t bytes) {
  if (bytes == 0) bytes = 1;
  bytes = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  for (auto it = free_.begin(); it != free_.end(); ++it) {
    if (it->second < bytes) continue;
    uint64_t offset = it->first;
    uint64_t rest = it->second - bytes;
    free_.erase(it);
    if (rest > 0) free_[offset + bytes] = rest;
    used_[offset] = bytes;
    free_bytes_ -= bytes;
    return offset;
  }
  return std::nullopt;
}

std::optional<uint64_t> RegionAllocator::Allocate(uint64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  return AllocateLocked(bytes);
}

std::optional<uint64_t> RegionAllocator::AllocateBy(uint64_t bytes,
                                                    std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    if (auto offset = AllocateLocked(bytes)) return offset;
    if (freed_.wait_until(lock, deadline) == std::cv_status::timeout) return AllocateLocked(bytes);
  }
}

void RegionAllocator::Free(uint64_t offset) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto used = used_.find(offset);
    if (used == used_.end()) return;
    uint64_t bytes = used->second;
    used_.erase(used);
    free_bytes_ += bytes;
    auto next = free_.lower_bound(offset);
    if (next != free_.end() && offset + bytes == next->first) {  // merge with the run after
      bytes += next->second;
      next = free_.erase(next);
    }
    if (next != free_.begin()) {  // merge with the run before
      auto prev = std::prev(next);
      if (prev->first + prev->second == offset) {
        prev->second += bytes;
        bytes = 0;
      }
    }
    if (bytes > 0) free_[offset] = bytes;
  }
  freed_.notify_all();
}

uint64_t RegionAllocator::free_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return free_bytes_;
}

}  // namespace kvpool::client
