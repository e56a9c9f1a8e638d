// Bounce buffers for one I/O queue: `count` buffers of `buffer_bytes` each
// (a multiple of 4096), contiguous, 4096-aligned. Backed by 2 MiB hugetlb
// pages when the system has them reserved (vm.nr_hugepages), otherwise by
// normal pages advised for transparent huge pages, or by memory an engine
// brings (SPDK's DMA-able memory, Adopt). Owned by one queue; not
// thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include <kvpool/result.h>

namespace kvpool {

class BufferArena {
 public:
  // Errors: IOError (mmap failed), naming `what`.
  static Result<BufferArena> Create(uint32_t count, size_t buffer_bytes, const std::string& what);
  // An arena over `base` (count x buffer_bytes, 4096-aligned), released with
  // `release(base)` when the arena goes; `hugetlb` says what backs it.
  static BufferArena Adopt(std::byte* base, uint32_t count, size_t buffer_bytes, bool hugetlb,
                           void (*release)(void*));

  BufferArena() = default;
  BufferArena(BufferArena&& other) noexcept;
  BufferArena& operator=(BufferArena&& other) noexcept;
  BufferArena(const BufferArena&) = delete;
  BufferArena& operator=(const BufferArena&) = delete;
  ~BufferArena();

  std::byte* buffer(uint32_t i) const { return base_ + size_t{i} * buffer_bytes_; }
  uint32_t count() const { return count_; }
  size_t buffer_bytes() const { return buffer_bytes_; }
  // True when the arena sits in hugetlb pages (false: THP advised only).
  bool hugetlb() const { return hugetlb_; }

 private:
  void Release();

  std::byte* base_ = nullptr;
  size_t map_bytes_ = 0;
  uint32_t count_ = 0;
  size_t buffer_bytes_ = 0;
  bool hugetlb_ = false;
  void (*release_)(void*) = nullptr;  // null: munmap(base_, map_bytes_)
};

}  // namespace kvpool
