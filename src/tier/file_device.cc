#include "tier/file_device.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string>
#include <unordered_map>

#include "util/aligned_buffer.h"
#include "util/checksum.h"
#include "util/errno_status.h"

namespace kvpool {
namespace {

namespace fs = std::filesystem;

std::string ChunkFileName(const ChunkKey& key) { return key.ToHex() + ".kv"; }

// Which chunk file and layer each slot's segment lives in, and how many live
// segments each file still holds (the file is unlinked when none remain).
//
// Two records of one chunk key (the chunk was removed and offloaded again
// while the old record was still referenced) share one file. A write binds
// its slot before it opens the file and the last release unlinks under the
// lock, so a file is never unlinked between a write and its bookkeeping
// (which lost that write, or left a hole that read back as a bad checksum).
class FileIndex {
 public:
  FileIndex(std::string dir, uint32_t slots) : dir_(std::move(dir)), slot_tags_(slots) {}

  void Bind(uint32_t slot, const SegmentTag& tag) {
    std::lock_guard<std::mutex> lock(mu_);
    slot_tags_[slot] = {tag.chunk, tag.layer, true};
    ++live_[tag.chunk];
  }

  // Unbinds `slot`; unlinks its chunk file when it was the file's last segment.
  void Release(uint32_t slot) {
    std::lock_guard<std::mutex> lock(mu_);
    Entry& e = slot_tags_[slot];
    if (!e.bound) return;
    e.bound = false;
    auto it = live_.find(e.chunk);
    if (it == live_.end() || --it->second > 0) return;
    live_.erase(it);
    ::unlink((dir_ + "/" + ChunkFileName(e.chunk)).c_str());
  }

  std::vector<std::string> Files() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> out;
    for (auto& [k, n] : live_) out.push_back(ChunkFileName(k));
    return out;
  }

 private:
  struct Entry {
    ChunkKey chunk;
    uint32_t layer = 0;
    bool bound = false;
  };
  const std::string dir_;
  std::mutex mu_;
  std::vector<Entry> slot_tags_;
  std::unordered_map<ChunkKey, uint32_t, ChunkKeyHash> live_;
};

class FileQueue final : public IoQueue {
 public:
  FileQueue(std::string dir, size_t slot_bytes, bool direct, FileIndex* index)
      : dir_(std::move(dir)), slot_bytes_(slot_bytes), direct_(direct), index_(index) {
    if (direct_) bounce_ = AlignedBuffer(slot_bytes_);
  }

  void Execute(std::span<SegmentIo* const> ops) override {
    for (SegmentIo* op : ops) op->status = Run(*op);
  }

 private:
  Status Run(SegmentIo& op) {
    std::string path = dir_ + "/" + ChunkFileName(op.tag.chunk);
    int flags = op.kind == IoKind::kRead ? O_RDONLY : (O_WRONLY | O_CREAT);
    if (direct_) flags |= O_DIRECT;
    const bool write = op.kind == IoKind::kWrite;
    if (write) index_->Bind(op.slot, op.tag);  // before open: see FileIndex
    int fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
    Status s = fd < 0 ? ErrnoStatus(errno, "open " + path)
                      : (write ? WriteAt(fd, op, path) : ReadAt(fd, op, path));
    if (fd >= 0) ::close(fd);
    if (!s.ok() && write) index_->Release(op.slot);
    return s;
  }

  size_t IoLength(const SegmentIo& op) const {
    return direct_ ? RoundUp(op.length, 4096) : op.length;
  }

  Status ReadAt(int fd, SegmentIo& op, const std::string& path) {
    std::byte* dst = direct_ ? bounce_.data() : op.buffer;
    ssize_t n = ::pread(fd, dst, IoLength(op), static_cast<off_t>(op.tag.layer) * slot_bytes_);
    if (n < 0) return ErrnoStatus(errno, "pread " + path);
    if (static_cast<size_t>(n) < op.length) return Status::IOError("short read of " + path);
    if (direct_) {
      op.delivered_checksum = CopyWithChecksum(op.buffer, dst, op.length);
      op.delivered_checksum_known = true;
    }
    return Status::OK();
  }

  Status WriteAt(int fd, SegmentIo& op, const std::string& path) {
    const std::byte* src = op.buffer;
    if (direct_) {
      std::memcpy(bounce_.data(), op.buffer, op.length);
      src = bounce_.data();
    }
    ssize_t n = ::pwrite(fd, src, IoLength(op), static_cast<off_t>(op.tag.layer) * slot_bytes_);
    if (n < 0) return ErrnoStatus(errno, "pwrite " + path);
    if (static_cast<size_t>(n) < op.length) return Status::IOError("short write to " + path);
    return Status::OK();
  }

  std::string dir_;
  size_t slot_bytes_;
  bool direct_;
  FileIndex* index_;
  AlignedBuffer bounce_;
};

class FilePerChunkDevice final : public Device {
 public:
  FilePerChunkDevice(DeviceOptions options, DeviceGeometry geometry)
      : Device(std::move(options), geometry), index_(options_.path, geometry.slot_count) {}

  Result<std::unique_ptr<IoQueue>> NewIoQueue() override {
    return std::unique_ptr<IoQueue>(new FileQueue(options_.path, geometry_.slot_payload_bytes,
                                                  options_.direct_io, &index_));
  }

  void ReleaseSlot(uint32_t slot) override { index_.Release(slot); }

  void DropCaches() override {
    for (const std::string& f : index_.Files()) {
      int fd = ::open((options_.path + "/" + f).c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;
      ::fdatasync(fd);  // DONTNEED leaves dirty pages in the cache
      ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
      ::close(fd);
    }
  }

  std::string Describe() const override {
    return Device::Describe() + (options_.direct_io ? " O_DIRECT" : " buffered") + " dir=" +
           options_.path;
  }

 private:
  FileIndex index_;
};

// Creates `dir` if needed and checks that files can be created in it (and
// opened with O_DIRECT when asked).
Status CheckDirectory(const DeviceOptions& options) {
  std::error_code ec;
  fs::create_directories(options.path, ec);
  if (ec) {
    return Status::InvalidArgument("device '" + options.name + "': cannot create directory '" +
                                   options.path + "': " + ec.message());
  }
  std::string probe = options.path + "/.kvpool-probe";
  int flags = O_RDWR | O_CREAT | O_CLOEXEC | (options.direct_io ? O_DIRECT : 0);
  int fd = ::open(probe.c_str(), flags, 0644);
  int err = errno;
  if (fd >= 0) {
    ::close(fd);
    ::unlink(probe.c_str());
    return Status::OK();
  }
  if (options.direct_io && err == EINVAL) {
    return Status::InvalidArgument("device '" + options.name + "': the filesystem of '" +
                                   options.path +
                                   "' refuses O_DIRECT; set direct_io = false or use a "
                                   "directory on a filesystem that supports it");
  }
  return ErrnoStatus(err, "device '" + options.name + "': cannot write in '" + options.path + "'");
}

// Removes chunk files left by an earlier run: this device is not persistent.
void RemoveStaleChunkFiles(const std::string& dir) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.path().extension() == ".kv") fs::remove(entry.path(), ec);
  }
}

}  // namespace

Result<std::unique_ptr<Device>> OpenFilePerChunkDevice(const DeviceOptions& options,
                                                       uint32_t segment_payload_bytes) {
  if (options.path.empty()) {
    return Status::InvalidArgument("device '" + options.name + "': path (a directory) is required");
  }
  KVP_RETURN_IF_ERROR(CheckDirectory(options));
  RemoveStaleChunkFiles(options.path);
  KVP_ASSIGN_OR_RETURN(DeviceGeometry g, PayloadSlotGeometry(options, segment_payload_bytes));
  return std::unique_ptr<Device>(new FilePerChunkDevice(options, g));
}

}  // namespace kvpool
