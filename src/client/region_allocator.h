// First-fit allocation of page-aligned runs inside a client's shared region:
// the memory behind SharedBuffers and the staging of non-shared buffers.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>

namespace kvpool::client {

class RegionAllocator {
 public:
  static constexpr uint64_t kAlignment = 4096;

  explicit RegionAllocator(uint64_t bytes);

  // Offset of a free run of `bytes` (rounded up to kAlignment), or nullopt.
  std::optional<uint64_t> Allocate(uint64_t bytes);
  // As Allocate, waiting for frees until `deadline`.
  std::optional<uint64_t> AllocateBy(uint64_t bytes, std::chrono::steady_clock::time_point deadline);
  // REQUIRES: `offset` came from Allocate and was not freed since.
  void Free(uint64_t offset);
  uint64_t free_bytes() const;

 private:
  std::optional<uint64_t> AllocateLocked(uint64_t bytes);

  mutable std::mutex mu_;
  std::condition_variable freed_;
  std::map<uint64_t, uint64_t> free_;  // offset -> bytes, coalesced
  std::map<uint64_t, uint64_t> used_;  // offset -> bytes
  uint64_t free_bytes_;
};

}  // namespace kvpool::client
