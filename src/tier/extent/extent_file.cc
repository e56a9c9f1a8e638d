#include "tier/extent/extent_file.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>
#include <utility>

#include "format/constants.h"
#include "util/aligned_buffer.h"
#include "util/errno_status.h"
#include "util/log.h"

namespace kvpool {
namespace {

constexpr size_t kScanBytes = 1u << 20;
constexpr std::chrono::seconds kLockWait{3};

std::string Bytes(uint64_t n) {
  char gib[32];
  std::snprintf(gib, sizeof(gib), "%.2f GiB", double(n) / double(1ull << 30));
  return std::to_string(n) + " bytes (" + gib + ")";
}

std::string ParentDir(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  return dir.empty() ? "." : dir;
}

Status NotDirect(const std::string& what, const std::string& path, const std::string& why) {
  return Status::InvalidArgument(what + ": '" + path + "' " + why +
                                 "; place the extent on a filesystem or block device that "
                                 "supports O_DIRECT (ext4, xfs, btrfs, a raw NVMe device)");
}

// tmpfs and ramfs accept O_DIRECT on recent kernels, but their pages are the
// page cache: nothing would bypass memory and nothing would persist.
Status CheckNotMemoryFs(const std::string& what, const std::string& path,
                        const std::string& probe) {
  struct statfs fs {};
  if (::statfs(probe.c_str(), &fs) != 0) return Status::OK();  // open() will say more
  if (fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC) {
    return NotDirect(what, path, "is on tmpfs/ramfs, where O_DIRECT does not bypass memory");
  }
  return Status::OK();
}

DirectIoReport QueryDirectIo(int fd, bool block_device) {
  DirectIoReport r;
#ifdef STATX_DIOALIGN
  struct statx stx {};
  if (::statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
      (stx.stx_mask & STATX_DIOALIGN) != 0) {
    r.reported = true;
    r.memory_alignment = stx.stx_dio_mem_align;
    r.offset_alignment = stx.stx_dio_offset_align;
    return r;
  }
#endif
  int logical_block = 0;
  if (block_device && ::ioctl(fd, BLKSSZGET, &logical_block) == 0 && logical_block > 0) {
    r.offset_alignment = size_t(logical_block);
  }
  return r;
}

// The memory alignment direct transfers may use: the block layer's DMA
// alignment, 4 bytes on NVMe, 512 on virtio-blk and loop devices. 4096 when
// the kernel does not say, or says something that is not a power of two up
// to 4096.
size_t MemoryAlignment(const DirectIoReport& r) {
  const size_t a = r.memory_alignment;
  return a != 0 && a <= 4096 && (a & (a - 1)) == 0 ? a : 4096;
}

}  // namespace

Status CheckDirectIo(const DirectIoReport& report, const std::string& what,
                     const std::string& path) {
  if (report.reported && (report.memory_alignment == 0 || report.offset_alignment == 0)) {
    return NotDirect(what, path,
                     "does not support O_DIRECT: the kernel reports no direct I/O alignment for it "
                     "(statx STATX_DIOALIGN), so reads and writes would go through the page "
                     "cache (ext4 with data=journal is one such filesystem)");
  }
  if (report.offset_alignment > format::kBlockBytes) {
    return Status::InvalidArgument(
        what + ": '" + path + "' takes O_DIRECT transfers only in multiples of " +
        std::to_string(report.offset_alignment) + " bytes; the extent format's block is " +
        std::to_string(format::kBlockBytes) +
        " bytes: place the extent on a device or filesystem with blocks of 4096 bytes or less");
  }
  return Status::OK();
}

namespace {

Status OpenError(int err, const std::string& what, const std::string& path) {
  Status s = ErrnoStatus(err, what + ": open '" + path + "' with O_DIRECT");
  if (err == EINVAL) return NotDirect(what, path, "cannot be opened with O_DIRECT (EINVAL)");
  return s;
}

bool AllZero(const std::byte* p, size_t n) {
  return n == 0 || (p[0] == std::byte{0} && std::memcmp(p, p + 1, n - 1) == 0);
}

}  // namespace

Status TransferAll(int fd, bool write, std::byte* buf, size_t bytes, uint64_t offset,
                   const std::string& what) {
  size_t done = 0;
  while (done < bytes) {
    ssize_t n = write ? ::pwrite(fd, buf + done, bytes - done, off_t(offset + done))
                      : ::pread(fd, buf + done, bytes - done, off_t(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, what);
    if (n == 0) return Status::IOError(what + ": short transfer at the end of the extent");
    done += size_t(n);
  }
  return Status::OK();
}

Result<std::unique_ptr<ExtentFile>> ExtentFile::Open(const DeviceOptions& options,
                                                     uint64_t need_bytes) {
  std::unique_ptr<ExtentFile> f(new ExtentFile);
  f->path_ = options.path;
  f->what_ = "device '" + options.name + "'";
  f->engine_ = options.engine;
  f->sqpoll_ = options.sqpoll;
  struct stat st {};
  if (::stat(f->path_.c_str(), &st) != 0) {
    if (errno != ENOENT) return ErrnoStatus(errno, f->what_ + ": stat '" + f->path_ + "'");
    KVP_RETURN_IF_ERROR(f->Create(options, need_bytes));
    return f;
  }
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
    return Status::InvalidArgument(f->what_ + ": '" + f->path_ +
                                   "' is neither a regular file nor a block device");
  }
  KVP_RETURN_IF_ERROR(f->OpenExisting(S_ISBLK(st.st_mode)));
  return f;
}

Status ExtentFile::CheckRoom(const DeviceOptions& options, uint64_t need_bytes) {
  struct stat st {};
  if (::stat(options.path.c_str(), &st) == 0) return Status::OK();
  const std::string what = "device '" + options.name + "'";
  const std::string dir = ParentDir(options.path);
  KVP_RETURN_IF_ERROR(CheckNotMemoryFs(what, options.path, dir));
  struct statvfs vfs {};
  if (::statvfs(dir.c_str(), &vfs) != 0) {
    return ErrnoStatus(errno, what + ": statvfs '" + dir + "'");
  }
  const uint64_t free_bytes = uint64_t{vfs.f_bavail} * vfs.f_frsize;
  if (free_bytes < need_bytes) {
    return Status::NoSpace(what + ": extent '" + options.path + "' needs " + Bytes(need_bytes) +
                           " (capacity plus slot headers and checkpoints), but its filesystem "
                           "has only " +
                           Bytes(free_bytes) + " free; nothing was written");
  }
  return Status::OK();
}

Status ExtentFile::Create(const DeviceOptions& options, uint64_t need_bytes) {
  KVP_RETURN_IF_ERROR(CheckRoom(options, need_bytes));
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_DIRECT | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    int err = errno;
    if (err == EINVAL) ::unlink(path_.c_str());  // O_EXCL: a file left behind is ours
    return OpenError(err, what_, path_);
  }
  created_ = true;
  Status direct = TakeDirectIoReport();
  if (!direct.ok()) {
    ::unlink(path_.c_str());
    return direct;
  }
  KVP_RETURN_IF_ERROR(Lock());
  Status grown = EnsureSize(need_bytes);
  if (!grown.ok()) ::unlink(path_.c_str());
  return grown;
}

Status ExtentFile::OpenExisting(bool block_device) {
  block_device_ = block_device;
  if (!block_device_) KVP_RETURN_IF_ERROR(CheckNotMemoryFs(what_, path_, path_));
  // O_EXCL on a block device: refuse one that is mounted or otherwise claimed.
  int flags = O_RDWR | O_DIRECT | O_CLOEXEC | (block_device_ ? O_EXCL : 0);
  fd_ = ::open(path_.c_str(), flags);
  if (fd_ < 0) return OpenError(errno, what_, path_);
  KVP_RETURN_IF_ERROR(TakeDirectIoReport());
  KVP_RETURN_IF_ERROR(Lock());
  if (block_device_) {
    if (::ioctl(fd_, BLKGETSIZE64, &size_) != 0) {
      return ErrnoStatus(errno, what_ + ": BLKGETSIZE64 on '" + path_ + "'");
    }
    return Status::OK();
  }
  struct stat st {};
  if (::fstat(fd_, &st) != 0) return ErrnoStatus(errno, what_ + ": fstat '" + path_ + "'");
  size_ = uint64_t(st.st_size);
  return Status::OK();
}

Status ExtentFile::TakeDirectIoReport() {
  const DirectIoReport r = QueryDirectIo(fd_, block_device_);
  KVP_RETURN_IF_ERROR(CheckDirectIo(r, what_, path_));
  direct_alignment_ = MemoryAlignment(r);
  return Status::OK();
}

Status ExtentFile::Lock() {
  // A process that just exited (or was killed) may hold the lock a little
  // longer: the kernel tears its io_uring rings down asynchronously.
  const auto deadline = std::chrono::steady_clock::now() + kLockWait;
  while (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    if (err == EINTR) continue;
    if (err != EWOULDBLOCK || std::chrono::steady_clock::now() > deadline) {
      return ErrnoStatus(err, what_ + ": '" + path_ + "' is in use by another pool (flock)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return Status::OK();
}

Status ExtentFile::EnsureSize(uint64_t bytes) {
  if (size_ >= bytes) return Status::OK();
  if (block_device_) {
    return Status::NoSpace(what_ + ": block device '" + path_ + "' has " + Bytes(size_) +
                           ", the extent needs " + Bytes(bytes));
  }
  struct statvfs vfs {};
  if (::fstatvfs(fd_, &vfs) == 0 && uint64_t{vfs.f_bavail} * vfs.f_frsize < bytes - size_) {
    return Status::NoSpace(what_ + ": growing extent '" + path_ + "' to " + Bytes(bytes) +
                           " needs " + Bytes(bytes - size_) + " more, its filesystem has only " +
                           Bytes(uint64_t{vfs.f_bavail} * vfs.f_frsize) + " free");
  }
  if (::fallocate(fd_, 0, 0, off_t(bytes)) != 0) {
    int err = errno;
    if (err != EOPNOTSUPP) return ErrnoStatus(err, what_ + ": fallocate '" + path_ + "'");
    log::Warn(what_ + ": the filesystem of '" + path_ +
              "' cannot preallocate (fallocate); the extent is a sparse file");
    if (::ftruncate(fd_, off_t(bytes)) != 0) {
      return ErrnoStatus(errno, what_ + ": ftruncate '" + path_ + "'");
    }
  }
  size_ = bytes;
  return Status::OK();
}

Result<bool> ExtentFile::LooksEmpty() {
  AlignedBuffer buf(kScanBytes);
  const uint64_t end = block_device_ ? std::min<uint64_t>(size_, kScanBytes) : size_;
  uint64_t pos = 0;
  while (pos < end) {
    off_t data = block_device_ ? off_t(pos) : ::lseek(fd_, off_t(pos), SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) return true;  // only holes from here on
      data = off_t(pos);                // no SEEK_DATA: read everything
    }
    off_t hole = block_device_ ? off_t(end) : ::lseek(fd_, data, SEEK_HOLE);
    if (hole < 0) hole = off_t(end);
    for (uint64_t at = uint64_t(data) / 4096 * 4096; at < uint64_t(hole); at += kScanBytes) {
      ssize_t n;
      do {
        n = ::pread(fd_, buf.data(), kScanBytes, off_t(at));
      } while (n < 0 && errno == EINTR);
      if (n < 0) return ErrnoStatus(errno, what_ + ": reading '" + path_ + "'");
      if (!AllZero(buf.data(), size_t(n))) return false;
      if (n == 0) break;
    }
    pos = uint64_t(hole);
  }
  return true;
}

Status ExtentFile::ReadAt(std::byte* buffer, size_t bytes, uint64_t offset,
                          const std::string& what) {
  return TransferAll(fd_, false, buffer, bytes, offset, what);
}

Status ExtentFile::WriteAt(const std::byte* buffer, size_t bytes, uint64_t offset,
                           const std::string& what) {
  return TransferAll(fd_, true, const_cast<std::byte*>(buffer), bytes, offset, what);
}

Status ExtentFile::Flush(const std::string& what) {
  if (::fdatasync(fd_) != 0) return ErrnoStatus(errno, what + ": fdatasync");
  return Status::OK();
}

Result<std::unique_ptr<RawQueue>> ExtentFile::NewEngine(uint32_t depth, size_t buffer_bytes) {
  EngineConfig c{engine_, fd_, depth, buffer_bytes, sqpoll_, what_};
  KVP_ASSIGN_OR_RETURN(std::unique_ptr<RawQueue> q, NewRawQueue(c));
  registered_.store(q->registered_buffers());
  hugetlb_.store(q->arena().hugetlb());
  return q;
}

std::string ExtentFile::Describe() const {
  std::string s = "engine=" + engine_ + " O_DIRECT";
  s += " dio-mem-align=" + std::to_string(direct_alignment_);
  s += std::string(" registered-buffers=") + (registered_.load() ? "yes" : "no");
  if (engine_ == "uring") s += std::string(" fixed-file=yes sqpoll=") + (sqpoll_ ? "yes" : "no");
  s += std::string(" hugepages=") + (hugetlb_.load() ? "yes(hugetlb 2MiB)" : "no(THP advised)");
  s += " path=" + path_ + (block_device_ ? " (block device)" : "");
  return s;
}

ExtentFile::~ExtentFile() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace kvpool
