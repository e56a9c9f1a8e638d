// A zero-filled heap buffer aligned for O_DIRECT I/O (4096 bytes by
// default). Buffers of 4 MiB and more are 2 MiB-aligned and advised for
// transparent huge pages (MADV_HUGEPAGE), so that a zero-copy transfer into
// them is a few physically contiguous DMA segments rather than one per
// 4 KiB page.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <memory>

namespace kvpool {

// `size` bytes (rounded up to the alignment; `alignment` bytes when size is
// 0) aligned to `alignment`, or, from 4 MiB on, to 2 MiB and advised for
// transparent huge pages. nullptr when memory runs out or the rounded size
// would overflow. Sets *allocated to the bytes allocated when not null.
// Release with std::free.
void* AllocateAligned(size_t size, size_t alignment, size_t* allocated = nullptr);

class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  AlignedBuffer(size_t size, size_t alignment = 4096);
  std::byte* data() const { return data_.get(); }
  size_t size() const { return size_; }

 private:
  struct Free {
    void operator()(std::byte* p) const { std::free(p); }
  };
  std::unique_ptr<std::byte, Free> data_;
  size_t size_ = 0;
};

inline bool IsAligned(const void* p, size_t alignment) {
  return reinterpret_cast<uintptr_t>(p) % alignment == 0;
}

inline size_t RoundUp(size_t n, size_t alignment) {
  return (n + alignment - 1) / alignment * alignment;
}

}  // namespace kvpool
