// Helpers for the extent device tests: options, io_uring and SPDK
// availability, and raw access to an extent (a file, or an SPDK namespace:
// find a segment's slot, flip a byte) that the tests use to damage data
// between runs.
//
// SPDK: the same tests run on the SPDK device when kvpool was built with
// SPDK and KVPOOL_TEST_SPDK_TRANSPORT holds one or two SPDK transport IDs
// separated by ',' (tests/hw/spdk_nvmf_test.sh sets it). Each names a
// namespace the tests may erase.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config.h"
#include "format/constants.h"
#include "format/slot_header.h"
#include "format/superblock.h"
#include "test_util.h"
#include "tier/extent/extent_device.h"
#include "util/aligned_buffer.h"
#include "util/checksum.h"
#if KVPOOL_HAVE_SPDK
#include "tier/spdk/spdk_device.h"
#endif

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

// The SPDK transport IDs the tests may use (empty: none).
inline std::vector<std::string> SpdkTransports() {
  std::vector<std::string> out;
  const char* v = std::getenv("KVPOOL_TEST_SPDK_TRANSPORT");
  std::string all = v != nullptr ? v : "";
  for (size_t start = 0; start < all.size();) {
    size_t end = all.find(',', start);
    if (end == std::string::npos) end = all.size();
    if (end > start) out.push_back(all.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// Why the SPDK variants cannot run here ("" when they can).
inline std::string SpdkSkipReason() {
  if (!KVPOOL_HAVE_SPDK) return "kvpool was built without SPDK (docs/spdk.md)";
  if (SpdkTransports().empty()) {
    return "KVPOOL_TEST_SPDK_TRANSPORT is not set (tests/hw/spdk_nvmf_test.sh sets it)";
  }
  return "";
}

#define KVP_SKIP_WITHOUT_SPDK()                                                 \
  if (std::string why = ::kvpool::testing::SpdkSkipReason(); !why.empty()) { \
    GTEST_SKIP() << "SPDK device not tested: " << why;                        \
  }

inline DeviceOptions SpdkOptions(std::string name, std::string transport, uint64_t capacity,
                                 double bandwidth_gibps = 2.0) {
  DeviceOptions d;
  d.name = std::move(name);
  d.kind = DeviceKind::kSpdk;
  d.transport = std::move(transport);
  d.capacity_bytes = capacity;
  d.bandwidth_gibps = bandwidth_gibps;
  d.queue_depth = 16;
  return d;
}

// Where a device's extent lives: its path, or its SPDK transport ID.
inline const std::string& Location(const DeviceOptions& d) {
  return d.kind == DeviceKind::kSpdk ? d.transport : d.path;
}

// Raw 4 KiB-block access to a closed extent: a file (buffered I/O) or an
// SPDK namespace (its own controller attachment). The device is not open.
class RawExtent {
 public:
  explicit RawExtent(const DeviceOptions& d) {
    if (d.kind != DeviceKind::kSpdk) {
      fd_ = ::open(d.path.c_str(), O_RDWR | O_CLOEXEC);
      return;
    }
#if KVPOOL_HAVE_SPDK
    auto t = OpenSpdkTarget(d);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    if (t.ok()) target_ = std::move(t).value();
#endif
  }
  ~RawExtent() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return fd_ >= 0 || target_ != nullptr; }
  uint64_t size() const {
    return target_ ? target_->size() : fd_ >= 0 ? uint64_t(::lseek(fd_, 0, SEEK_END)) : 0;
  }
  // `bytes` at `at` (multiples of 4096); false on error or end of file.
  bool Read(uint64_t at, std::byte* out, size_t bytes) const {
    if (target_) {
      AlignedBuffer b(bytes);
      if (!target_->ReadAt(b.data(), bytes, at, "test").ok()) return false;
      std::memcpy(out, b.data(), bytes);
      return true;
    }
    return ::pread(fd_, out, bytes, off_t(at)) == ssize_t(bytes);
  }
  bool Write(uint64_t at, const std::byte* in, size_t bytes) const {
    if (target_) {
      AlignedBuffer b(bytes);
      std::memcpy(b.data(), in, bytes);
      return target_->WriteAt(b.data(), bytes, at, "test").ok() && target_->Flush("test").ok();
    }
    bool ok = ::pwrite(fd_, in, bytes, off_t(at)) == ssize_t(bytes);
    ::fsync(fd_);
    return ok;
  }

 private:
  int fd_ = -1;
  std::unique_ptr<BlockTarget> target_;
};

// Raw view of a closed extent (the device is not open).
class ExtentImage {
 public:
  explicit ExtentImage(const std::string& path) : ExtentImage(PathOptions(path)) {}
  explicit ExtentImage(const DeviceOptions& device) : raw_(device) {
    std::vector<std::byte> block(format::kBlockBytes);
    if (raw_.ok() && raw_.Read(0, block.data(), block.size())) {
      format::DecodedSuperblock d = format::DecodeSuperblock(block.data());
      if (d.state == format::SuperblockState::kValid) layout_ = d.sb.layout;
    }
  }
  bool ok() const { return layout_.has_value(); }
  const format::Layout& layout() const { return *layout_; }

  // The slot whose header holds (chunk, layer), if any.
  std::optional<uint32_t> FindSlot(const ChunkKey& chunk, uint32_t layer) const {
    std::vector<std::byte> block(format::kBlockBytes);
    for (uint64_t s = 0; layout_ && s < layout_->slot_count; ++s) {
      if (!raw_.Read(layout_->SlotOffset(s), block.data(), block.size())) break;
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
    std::vector<std::byte> block(format::kBlockBytes);
    const uint64_t base = at / format::kBlockBytes * format::kBlockBytes;
    if (!raw_.Read(base, block.data(), block.size())) return;
    block[at - base] = ~block[at - base];
    raw_.Write(base, block.data(), block.size());
  }

 private:
  static DeviceOptions PathOptions(const std::string& path) {
    DeviceOptions d;
    d.kind = DeviceKind::kExtent;
    d.path = path;
    return d;
  }

  RawExtent raw_;
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

// A digest of a device's whole extent (file or namespace).
inline uint64_t DeviceDigest(const DeviceOptions& d) {
  if (d.kind != DeviceKind::kSpdk) return FileDigest(d.path);
  RawExtent raw(d);
  std::vector<std::byte> chunk(1 << 20);
  uint64_t digest = 0;
  for (uint64_t at = 0; at + chunk.size() <= raw.size(); at += chunk.size()) {
    if (!raw.Read(at, chunk.data(), chunk.size())) return 0;
    digest = digest * 31 + Checksum64(chunk.data(), chunk.size());
  }
  return digest;
}

// Zeroes the first MiB of an SPDK namespace: the next open formats it.
inline bool WipeSpdk(const DeviceOptions& d) {
  RawExtent raw(d);
  std::vector<std::byte> zeros(1 << 20);
  return raw.ok() && raw.Write(0, zeros.data(), zeros.size());
}

}  // namespace kvpool::testing
