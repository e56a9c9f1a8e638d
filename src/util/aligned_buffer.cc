#include "util/aligned_buffer.h"

#include <cstring>
#include <new>

namespace kvpool {

AlignedBuffer::AlignedBuffer(size_t size, size_t alignment) : size_(size) {
  size_t rounded = (size + alignment - 1) / alignment * alignment;
  void* p = std::aligned_alloc(alignment, rounded == 0 ? alignment : rounded);
  if (p == nullptr) throw std::bad_alloc();
  std::memset(p, 0, rounded == 0 ? alignment : rounded);
  data_.reset(static_cast<std::byte*>(p));
}

}  // namespace kvpool
