#include "uring_ceiling.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "config.h"
#include "util/aligned_buffer.h"
#include "util/errno_status.h"

#if KVPOOL_HAVE_URING
#include <liburing.h>
#endif

namespace kvpool::cli {

#if KVPOOL_HAVE_URING
namespace {

// A ring over one O_DIRECT descriptor; closes both.
class Ring {
 public:
  ~Ring() {
    if (ready_) io_uring_queue_exit(&ring_);
    if (fd_ >= 0) ::close(fd_);
  }
  Status Open(const std::string& path, uint32_t depth) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
    if (fd_ < 0) return ErrnoStatus(errno, "uring ceiling: open '" + path + "'");
    int r = io_uring_queue_init(depth, &ring_, 0);
    if (r < 0) return ErrnoStatus(-r, "uring ceiling: io_uring_queue_init");
    ready_ = true;
    return Status::OK();
  }
  io_uring* get() { return &ring_; }
  int fd() const { return fd_; }

 private:
  io_uring ring_{};
  bool ready_ = false;
  int fd_ = -1;
};

// The file blocks to read, in random order: io_bytes / block of them.
std::vector<uint64_t> BlockOffsets(const FioJob& j) {
  std::vector<uint64_t> blocks(j.size / j.block_bytes);
  std::iota(blocks.begin(), blocks.end(), uint64_t{0});
  std::shuffle(blocks.begin(), blocks.end(), std::mt19937_64(42));
  blocks.resize(j.io_bytes / j.block_bytes);
  for (uint64_t& b : blocks) b = j.offset + b * j.block_bytes;
  return blocks;
}

}  // namespace

Result<double> RunUringCeiling(const FioJob& j) {
  if (!j.random || j.block_bytes == 0 || j.block_bytes % 4096 != 0 || j.queue_depth == 0 ||
      j.io_bytes < j.block_bytes || j.io_bytes > j.size) {
    return Status::InvalidArgument("uring ceiling: block_bytes " + std::to_string(j.block_bytes) +
                                   ", io_bytes " + std::to_string(j.io_bytes) + " of a " +
                                   std::to_string(j.size) + "-byte region");
  }
  Ring ring;
  KVP_RETURN_IF_ERROR(ring.Open(j.filename, j.queue_depth));
  const std::vector<uint64_t> offsets = BlockOffsets(j);
  AlignedBuffer into(offsets.size() * size_t{j.block_bytes});
  const auto start = std::chrono::steady_clock::now();
  size_t prepared = 0, accepted = 0, completed = 0;  // accepted: taken by the kernel
  Status failed;  // once set, nothing more is prepared; what the kernel took is reaped
  while (completed < accepted || (failed.ok() && completed < offsets.size())) {
    for (; failed.ok() && prepared < offsets.size() && prepared - completed < j.queue_depth;
         ++prepared) {
      io_uring_sqe* sqe = io_uring_get_sqe(ring.get());
      io_uring_prep_read(sqe, ring.fd(), into.data() + prepared * j.block_bytes, j.block_bytes,
                         offsets[prepared]);
    }
    const bool unsubmitted = failed.ok() && prepared > accepted;
    io_uring_cqe* first = nullptr;
    int r = unsubmitted ? io_uring_submit_and_wait(ring.get(), 1)
                        : io_uring_wait_cqe_nr(ring.get(), &first, 1);
    if (unsubmitted && r > 0) accepted += static_cast<size_t>(r);
    if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY && failed.ok()) {
      failed = ErrnoStatus(-r, "uring ceiling: io_uring_enter");
    }
    unsigned head = 0, count = 0;
    io_uring_cqe* cqe = nullptr;
    io_uring_for_each_cqe(ring.get(), head, cqe) {
      if (cqe->res != static_cast<int>(j.block_bytes) && failed.ok()) {
        failed = Status::IOError("uring ceiling: read of '" + j.filename + "' returned " +
                                 std::to_string(cqe->res));
      }
      ++count;
    }
    io_uring_cq_advance(ring.get(), count);
    completed += count;
  }
  if (!failed.ok()) return failed;
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return double(offsets.size()) * j.block_bytes / secs / double(1ull << 30);
}

#else

Result<double> RunUringCeiling(const FioJob&) {
  return Status::Unsupported("uring ceiling: built without liburing");
}

#endif

}  // namespace kvpool::cli
