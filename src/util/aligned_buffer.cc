#include "util/aligned_buffer.h"

#include <cstdint>
#include <cstring>
#include <new>

#include <sys/mman.h>

namespace kvpool {
namespace {
constexpr size_t kHugeBytes = 2u << 20;
}  // namespace

void* AllocateAligned(size_t size, size_t alignment, size_t* allocated) {
  if (size >= kHugeBytes * 2 && alignment < kHugeBytes) alignment = kHugeBytes;
  if (size > SIZE_MAX - (alignment - 1)) return nullptr;
  size_t rounded = (size + alignment - 1) / alignment * alignment;
  if (rounded == 0) rounded = alignment;
  void* p = std::aligned_alloc(alignment, rounded);
  if (p == nullptr) return nullptr;
  if (alignment == kHugeBytes) ::madvise(p, rounded, MADV_HUGEPAGE);  // advice only
  if (allocated != nullptr) *allocated = rounded;
  return p;
}

AlignedBuffer::AlignedBuffer(size_t size, size_t alignment) : size_(size) {
  size_t allocated = 0;
  void* p = AllocateAligned(size, alignment, &allocated);
  if (p == nullptr) throw std::bad_alloc();
  std::memset(p, 0, allocated);
  data_.reset(static_cast<std::byte*>(p));
}

}  // namespace kvpool
