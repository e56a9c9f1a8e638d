// The psync engine: pread/pwrite (preadv/pwritev for direct transfers) on
// the O_DIRECT descriptor, one transfer at a time, for kernels without
// io_uring. Still O_DIRECT; bounce buffers from the arena (hugepages where
// available) except for the payload of a direct transfer.
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "format/constants.h"
#include "tier/extent/raw_queue.h"

namespace kvpool {
namespace {

// Transfers the whole of iov[0..n) (consumed as it goes) unless the kernel
// reports an error or EOF.
int64_t FullTransfer(int fd, IoKind kind, uint64_t offset, iovec* iov, int n) {
  uint64_t done = 0;
  while (n > 0) {
    ssize_t got = kind == IoKind::kRead ? ::preadv(fd, iov, n, off_t(offset + done))
                                        : ::pwritev(fd, iov, n, off_t(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return -errno;
    if (got == 0) break;  // end of file: a short transfer
    done += static_cast<uint64_t>(got);
    size_t left = static_cast<size_t>(got);
    for (; n > 0 && left >= iov->iov_len; --n, ++iov) left -= iov->iov_len;
    if (n > 0) {  // the kernel stopped inside this entry
      iov->iov_base = static_cast<std::byte*>(iov->iov_base) + left;
      iov->iov_len -= left;
    }
  }
  return static_cast<int64_t>(done);
}

class PsyncQueue final : public RawQueue {
 public:
  PsyncQueue(int fd, BufferArena arena) : RawQueue(std::move(arena)), fd_(fd) {}

  void Run(std::span<RawIo> ios) override {
    for (RawIo& io : ios) {
      NoteInFlight(0);
      io.result = Transfer(io);
      NoteInFlight(1);
    }
  }
  std::string_view engine() const override { return "psync"; }
  bool registered_buffers() const override { return false; }
  bool supports_direct() const override { return true; }

 private:
  int64_t Transfer(RawIo& io) {
    if (io.direct != nullptr) {
      return FullTransfer(fd_, io.kind, io.offset, io.iov, DirectIovecs(&io, arena_.buffer(io.buffer)));
    }
    io.iov[0] = {arena_.buffer(io.buffer), io.length};
    return FullTransfer(fd_, io.kind, io.offset, io.iov, 1);
  }

  int fd_;
};

}  // namespace

Result<std::unique_ptr<RawQueue>> NewPsyncQueue(const EngineConfig& config, BufferArena arena) {
  return std::unique_ptr<RawQueue>(new PsyncQueue(config.fd, std::move(arena)));
}

}  // namespace kvpool
