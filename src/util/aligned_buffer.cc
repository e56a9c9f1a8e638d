#include "util/aligned_buffer.h"

#include <cstring>
#include <new>

#include <sys/mman.h>

namespace kvpool {
namespace {
constexpr size_t kHugeBytes = 2u << 20;
}  // namespace

AlignedBuffer::AlignedBuffer(size_t size, size_t alignment) : size_(size) {
  if (size >= kHugeBytes * 2 && alignment < kHugeBytes) alignment = kHugeBytes;
  size_t rounded = (size + alignment - 1) / alignment * alignment;
  void* p = std::aligned_alloc(alignment, rounded == 0 ? alignment : rounded);
  if (p == nullptr) throw std::bad_alloc();
  if (alignment == kHugeBytes) ::madvise(p, rounded, MADV_HUGEPAGE);  // advice only
  std::memset(p, 0, rounded == 0 ? alignment : rounded);
  data_.reset(static_cast<std::byte*>(p));
}

}  // namespace kvpool
