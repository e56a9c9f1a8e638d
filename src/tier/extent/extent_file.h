// The file or block device behind an extent device: opened O_DIRECT (always),
// locked against a second opener (flock), created and preallocated when
// missing. Refuses, with a message naming the path, what would not really be
// O_DIRECT (tmpfs/ramfs, or a filesystem that rejects it) and what does not
// fit (checked before anything is created or written).
#pragma once

#include <cstdint>
#include <string>

#include <kvpool/options.h>
#include <kvpool/result.h>

namespace kvpool {

class ExtentFile {
 public:
  // Opens options.path; when it does not exist, creates it with `need_bytes`
  // preallocated. Errors: InvalidArgument (not O_DIRECT-capable, not a file
  // or block device), NoSpace (the filesystem or block device is too small:
  // the message names the path and both sizes), IOError (locked by another
  // process, or another failure).
  static Result<ExtentFile> Open(const DeviceOptions& options, uint64_t need_bytes);
  // The checks Open makes before creating a missing extent (O_DIRECT-capable
  // filesystem, room for `need_bytes`); OK when options.path exists.
  static Status CheckRoom(const DeviceOptions& options, uint64_t need_bytes);

  ExtentFile() = default;
  ExtentFile(ExtentFile&& other) noexcept;
  ExtentFile& operator=(ExtentFile&& other) noexcept;
  ExtentFile(const ExtentFile&) = delete;
  ExtentFile& operator=(const ExtentFile&) = delete;
  ~ExtentFile();

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  bool block_device() const { return block_device_; }
  bool created() const { return created_; }  // created by this Open
  uint64_t size() const { return size_; }

  // Makes the extent at least `bytes` long: regular files are grown with
  // fallocate after a free-space check; a smaller block device is NoSpace.
  Status EnsureSize(uint64_t bytes);
  // True when every byte reads as zero (holes and unwritten extents are
  // skipped with SEEK_DATA). For block devices only the first MiB is read.
  Result<bool> LooksEmpty();

 private:
  Status OpenExisting(bool block_device);
  Status Create(const DeviceOptions& options, uint64_t need_bytes);
  Status Lock();

  int fd_ = -1;
  std::string path_;
  std::string what_;  // "device 'name'"
  bool block_device_ = false;
  bool created_ = false;
  uint64_t size_ = 0;
};

// pread/pwrite of exactly `bytes` at `offset`, retried on EINTR; errors name `what`.
Status TransferAll(int fd, bool write, std::byte* buffer, size_t bytes, uint64_t offset,
                   const std::string& what);

}  // namespace kvpool
