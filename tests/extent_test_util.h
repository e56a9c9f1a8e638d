// Helpers for the extent device tests: options, io_uring availability, and
// raw access to an extent file (find a segment's slot, flip a byte) that
// the tests use to damage data between runs.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "format/constants.h"
#include "format/slot_header.h"
#include "format/superblock.h"
#include "test_util.h"
#include "tier/extent/extent_device.h"
#include "util/checksum.h"

namespace kvpool::testing {

inline DeviceOptions ExtentOptions(std::string name, std::string path, uint64_t capacity,
                                   std::string engine, double bandwidth_gibps = 2.0) {
  DeviceOptions d;
  d.name = std::move(name);
  d.kind = DeviceKind::kExtent;
  d.path = std::move(path);
  d.capacity_bytes = capacity;
  d.bandwidth_gibps = bandwidth_gibps;
  d.engine = std::move(engine);
  d.queue_depth = 16;
  return d;
}

// OK, or why io_uring cannot be used here (checked once per process).
inline const Status& UringStatus() {
  static const Status status = [] {
    TempDir dir;
    auto d =
        OpenExtentDevice(ExtentOptions("probe", dir.path() + "/probe.extent", 1 << 20, "uring"),
                         4096, ChunkKey{1, 1});
    return d.ok() || d.status().code() != StatusCode::kUnsupported ? Status::OK() : d.status();
  }();
  return status;
}

#define KVP_SKIP_WITHOUT_URING(engine)                                                       \
  if ((engine) == "uring" && !::kvpool::testing::UringStatus().ok()) {                       \
    GTEST_SKIP() << "io_uring unavailable: " << ::kvpool::testing::UringStatus().ToString(); \
  }

// Raw view of a closed extent file (buffered I/O; the device is not open).
class ExtentImage {
 public:
  explicit ExtentImage(const std::string& path) : fd_(::open(path.c_str(), O_RDWR | O_CLOEXEC)) {
    std::vector<std::byte> block(format::kBlockBytes);
    if (fd_ >= 0 && ::pread(fd_, block.data(), block.size(), 0) == ssize_t(block.size())) {
      format::DecodedSuperblock d = format::DecodeSuperblock(block.data());
      if (d.state == format::SuperblockState::kValid) layout_ = d.sb.layout;
    }
  }
  ~ExtentImage() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return layout_.has_value(); }
  const format::Layout& layout() const { return *layout_; }

  // The slot whose header holds (chunk, layer), if any.
  std::optional<uint32_t> FindSlot(const ChunkKey& chunk, uint32_t layer) const {
    std::vector<std::byte> block(format::kBlockBytes);
    for (uint64_t s = 0; layout_ && s < layout_->slot_count; ++s) {
      if (::pread(fd_, block.data(), block.size(), off_t(layout_->SlotOffset(s))) <= 0) break;
      format::SlotHeader h;
      if (format::DecodeSlotHeader(block.data(), &h).ok() && h.chunk == chunk && h.layer == layer) {
        return uint32_t(s);
      }
    }
    return std::nullopt;
  }

  // Flips the bits of one byte at `offset` within slot `slot` (0 = header).
  void FlipByte(uint32_t slot, uint64_t offset) const {
    FlipAt(layout_->SlotOffset(slot) + offset);
  }
  void FlipAt(uint64_t at) const {
    std::byte b{};
    if (::pread(fd_, &b, 1, off_t(at)) != 1) return;
    b = ~b;
    (void)!::pwrite(fd_, &b, 1, off_t(at));
    ::fsync(fd_);
  }

 private:
  int fd_;
  std::optional<format::Layout> layout_;
};

// A digest of a whole file's bytes (to show that a refused open wrote nothing).
inline uint64_t FileDigest(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  std::vector<std::byte> all, chunk(1 << 20);
  ssize_t n;
  while (fd >= 0 && (n = ::read(fd, chunk.data(), chunk.size())) > 0) {
    all.insert(all.end(), chunk.begin(), chunk.begin() + n);
  }
  if (fd >= 0) ::close(fd);
  return Checksum64(all.data(), all.size()) ^ all.size();
}

}  // namespace kvpool::testing
