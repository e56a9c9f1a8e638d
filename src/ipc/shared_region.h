// The shared-memory region of one kvpoold connection: a memfd created by the
// client, sealed against shrinking, mapped by both sides. The daemon reads
// and writes segment data in it directly (O_DIRECT where it is aligned).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include <kvpool/client.h>
#include <kvpool/result.h>

#include "ipc/unix_socket.h"

namespace kvpool::ipc {

class SharedRegion {
 public:
  // Client side: a new memfd of `bytes` (> 0, rounded up to 2 MiB) in the
  // pages `pages` asks for (kHugetlb falls back to kTransparent with a
  // warning), sealed so that it can never shrink or grow (a shrunk mapping
  // would fault the daemon). Both sides map it 2 MiB-aligned, so that huge
  // pages can be mapped as such, and populate their mapping at once: the
  // region is memory the client commits when it connects.
  static Result<std::unique_ptr<SharedRegion>> Create(uint64_t bytes, const std::string& name,
                                                      RegionPages pages = RegionPages::kTransparent);
  // Daemon side: maps a client's memfd. InvalidArgument unless `fd` is a
  // memfd sealed against shrinking and growing whose size is `bytes`.
  static Result<std::unique_ptr<SharedRegion>> Map(Fd fd, uint64_t bytes);

  ~SharedRegion();
  SharedRegion(const SharedRegion&) = delete;
  SharedRegion& operator=(const SharedRegion&) = delete;

  std::byte* data() const { return base_; }
  uint64_t size() const { return bytes_; }
  int fd() const { return fd_.get(); }
  // Bytes of this side's mapping in huge pages, measured (from
  // /proc/self/smaps) on the first call; the client asks as soon as it makes
  // the region, the daemon never needs to.
  uint64_t huge_bytes() const;
  // True when [p, p + n) lies inside the region.
  bool Contains(const void* p, uint64_t n) const;
  uint64_t OffsetOf(const void* p) const { return static_cast<uint64_t>(static_cast<const std::byte*>(p) - base_); }

 private:
  SharedRegion(Fd fd, std::byte* base, uint64_t bytes) : fd_(std::move(fd)), base_(base), bytes_(bytes) {}

  Fd fd_;
  std::byte* base_;
  uint64_t bytes_;
  mutable std::once_flag huge_measured_;
  mutable uint64_t huge_bytes_ = 0;  // set once, under huge_measured_
};

}  // namespace kvpool::ipc
