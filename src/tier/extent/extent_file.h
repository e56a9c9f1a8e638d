// The file or block device behind an extent device: opened O_DIRECT (always),
// locked against a second opener (flock), created and preallocated when
// missing. Refuses, with a message naming the path, what would not really be
// O_DIRECT (tmpfs/ramfs, a filesystem that rejects it or that the kernel
// reports takes no direct I/O, one whose O_DIRECT blocks are larger than the
// format's 4096) and what does not fit (checked before anything is created
// or written). As a BlockTarget its
// metadata I/O is pread/pwrite + fdatasync and its engines are the kernel's
// (options.engine: io_uring or psync, raw_queue.h).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include <kvpool/options.h>
#include <kvpool/result.h>

#include "tier/extent/block_target.h"

namespace kvpool {

// What the kernel reports of O_DIRECT on a descriptor: statx
// STATX_DIOALIGN (files on ext4/xfs since Linux 6.1, block devices since
// 6.11), and for block devices the logical block size (BLKSSZGET) when statx
// does not say.
struct DirectIoReport {
  bool reported = false;        // statx answered STATX_DIOALIGN
  size_t memory_alignment = 0;  // 0: no direct I/O on this file (when reported)
  size_t offset_alignment = 0;  // 0: unknown, or no direct I/O (when reported)
};

// Refuses, naming `path`, a file the kernel reports as taking no direct I/O
// (an alignment of 0), and one whose O_DIRECT offsets must be multiples of
// more than the format's 4096-byte block. InvalidArgument either way.
Status CheckDirectIo(const DirectIoReport& report, const std::string& what,
                     const std::string& path);

class ExtentFile final : public BlockTarget {
 public:
  // Opens options.path; when it does not exist, creates it with `need_bytes`
  // preallocated. Errors: InvalidArgument (not O_DIRECT-capable, O_DIRECT
  // blocks over 4096 bytes, not a file or block device), NoSpace (the filesystem or block device is
  // too small: the message names the path and both sizes), IOError (locked by another process, or
  // another failure).
  static Result<std::unique_ptr<ExtentFile>> Open(const DeviceOptions& options,
                                                  uint64_t need_bytes);
  // The checks Open makes before creating a missing extent (O_DIRECT-capable
  // filesystem, room for `need_bytes`); OK when options.path exists.
  static Status CheckRoom(const DeviceOptions& options, uint64_t need_bytes);

  ExtentFile(const ExtentFile&) = delete;
  ExtentFile& operator=(const ExtentFile&) = delete;
  ~ExtentFile() override;

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  bool block_device() const { return block_device_; }
  bool created() const override { return created_; }  // created by this Open
  uint64_t size() const override { return size_; }
  const std::string& location() const override { return path_; }

  Status ReadAt(std::byte* buffer, size_t bytes, uint64_t offset, const std::string& what) override;
  Status WriteAt(const std::byte* buffer, size_t bytes, uint64_t offset,
                 const std::string& what) override;
  Status Flush(const std::string& what) override;  // fdatasync
  // Makes the extent at least `bytes` long: regular files are grown with
  // fallocate after a free-space check; a smaller block device is NoSpace.
  Status EnsureSize(uint64_t bytes) override;
  // True when every byte reads as zero (holes and unwritten extents are
  // skipped with SEEK_DATA). For block devices only the first MiB is read.
  Result<bool> LooksEmpty() override;
  // An engine of options.engine ("uring" or "psync") on this descriptor.
  Result<std::unique_ptr<RawQueue>> NewEngine(uint32_t depth, size_t buffer_bytes) override;
  // Memory alignment of O_DIRECT transfers on this file (statx
  // STATX_DIOALIGN; 4096 when the kernel does not report it).
  size_t direct_alignment() const override { return direct_alignment_; }
  // "engine=... O_DIRECT dio-mem-align=... registered-buffers=... hugepages=... path=...".
  std::string Describe() const override;

 private:
  ExtentFile() = default;
  Status OpenExisting(bool block_device);
  Status Create(const DeviceOptions& options, uint64_t need_bytes);
  // Checks what the kernel reports of O_DIRECT on fd_ (CheckDirectIo) and
  // takes direct_alignment_ from it.
  Status TakeDirectIoReport();
  Status Lock();

  int fd_ = -1;
  std::string path_;
  std::string what_;  // "device 'name'"
  bool block_device_ = false;
  bool created_ = false;
  uint64_t size_ = 0;
  size_t direct_alignment_ = 4096;
  std::string engine_;  // options.engine
  bool sqpoll_ = false;
  // What the engines' buffers got (the last engine made).
  std::atomic<bool> registered_{false};
  std::atomic<bool> hugetlb_{false};
};

// pread/pwrite of exactly `bytes` at `offset`, retried on EINTR; errors name `what`.
Status TransferAll(int fd, bool write, std::byte* buffer, size_t bytes, uint64_t offset,
                   const std::string& what);

}  // namespace kvpool
