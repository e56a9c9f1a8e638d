#include "tier/extent/buffer_arena.h"

#include <sys/mman.h>

#include <cerrno>
#include <string>
#include <utility>

#include "util/aligned_buffer.h"
#include "util/errno_status.h"

namespace kvpool {
namespace {

constexpr size_t kHugePage = 2u << 20;

// Anonymous memory starting on a 2 MiB boundary (so that transparent huge
// pages can back all of it); nullptr with errno set on failure.
void* MapAligned(size_t bytes) {
  void* raw =
      mmap(nullptr, bytes + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  auto start = reinterpret_cast<uintptr_t>(raw);
  uintptr_t aligned = (start + kHugePage - 1) / kHugePage * kHugePage;
  if (aligned > start) munmap(raw, aligned - start);
  munmap(reinterpret_cast<void*>(aligned + bytes), start + kHugePage - aligned);
  return reinterpret_cast<void*>(aligned);
}

}  // namespace

Result<BufferArena> BufferArena::Create(uint32_t count, size_t buffer_bytes,
                                        const std::string& what) {
  BufferArena a;
  a.count_ = count;
  a.buffer_bytes_ = buffer_bytes;
  a.map_bytes_ = RoundUp(size_t{count} * buffer_bytes, kHugePage);
  void* p = mmap(nullptr, a.map_bytes_, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_POPULATE, -1, 0);
  if (p != MAP_FAILED) {
    a.hugetlb_ = true;
  } else {
    p = MapAligned(a.map_bytes_);
    if (p == nullptr) return ErrnoStatus(errno, what + ": mmap of I/O buffers");
    madvise(p, a.map_bytes_, MADV_HUGEPAGE);  // advice only: failure is harmless
  }
  a.base_ = static_cast<std::byte*>(p);
  return a;
}

BufferArena BufferArena::Adopt(std::byte* base, uint32_t count, size_t buffer_bytes, bool hugetlb,
                               void (*release)(void*)) {
  BufferArena a;
  a.base_ = base;
  a.count_ = count;
  a.buffer_bytes_ = buffer_bytes;
  a.map_bytes_ = size_t{count} * buffer_bytes;
  a.hugetlb_ = hugetlb;
  a.release_ = release;
  return a;
}

BufferArena::BufferArena(BufferArena&& o) noexcept { *this = std::move(o); }

BufferArena& BufferArena::operator=(BufferArena&& o) noexcept {
  if (this != &o) {
    Release();
    base_ = std::exchange(o.base_, nullptr);
    map_bytes_ = std::exchange(o.map_bytes_, 0);
    count_ = std::exchange(o.count_, 0);
    buffer_bytes_ = std::exchange(o.buffer_bytes_, 0);
    hugetlb_ = std::exchange(o.hugetlb_, false);
    release_ = std::exchange(o.release_, nullptr);
  }
  return *this;
}

BufferArena::~BufferArena() { Release(); }

void BufferArena::Release() {
  if (base_ == nullptr) return;
  if (release_ != nullptr) {
    release_(base_);
  } else {
    munmap(base_, map_bytes_);
  }
  base_ = nullptr;
}

}  // namespace kvpool
