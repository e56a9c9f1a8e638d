// The io_uring engine: one ring per queue (per worker thread), the arena's
// buffers registered (READ_FIXED/WRITE_FIXED), the extent's descriptor
// registered as fixed file 0, optional SQPOLL. Direct transfers are
// READV/WRITEV over the header block, the caller's memory and the tail
// block. Run submits the whole batch with one system call and reaps it;
// nothing here takes a lock.
#include <liburing.h>
#include <sched.h>
#include <sys/uio.h>

#include <cerrno>
#include <climits>
#include <vector>

#include "tier/extent/raw_queue.h"
#include "util/errno_status.h"
#include "util/log.h"

namespace kvpool {
namespace {

constexpr int64_t kNoResult = INT64_MIN;

// io_uring_queue_init's -errno as a Status; "no io_uring here" is Unsupported.
Status RingError(int neg_errno, const std::string& what) {
  Status s = ErrnoStatus(-neg_errno, what + ": io_uring_queue_init");
  if (neg_errno == -ENOSYS || neg_errno == -EPERM) {
    return Status::Unsupported(s.message() +
                               " (io_uring is not available on this kernel or is disabled by "
                               "kernel.io_uring_disabled); set engine = \"psync\"");
  }
  return s;
}

int InitRing(io_uring* ring, uint32_t entries, bool sqpoll) {
  io_uring_params p{};
  if (sqpoll) {
    p.flags |= IORING_SETUP_SQPOLL;
    p.sq_thread_idle = 100;  // ms before the kernel thread sleeps
  }
#ifdef IORING_SETUP_COOP_TASKRUN
  io_uring_params coop = p;
  coop.flags |= IORING_SETUP_COOP_TASKRUN;  // we always enter the kernel to reap
  if (io_uring_queue_init_params(entries, ring, &coop) == 0) return 0;
#endif
  return io_uring_queue_init_params(entries, ring, &p);
}

class UringQueue final : public RawQueue {
 public:
  UringQueue(int fd, BufferArena arena) : RawQueue(std::move(arena)), fd_(fd) {}
  ~UringQueue() override {
    if (!ring_ready_) return;
    // The ring's teardown is asynchronous; dropping the fixed file first
    // releases the extent (and its flock) before the destructor returns.
    if (fixed_file_) io_uring_unregister_files(&ring_);
    io_uring_queue_exit(&ring_);
  }

  Status Init(const EngineConfig& c) {
    int r = InitRing(&ring_, c.depth, c.sqpoll);
    if (r < 0) return RingError(r, c.what);
    ring_ready_ = true;
    std::vector<iovec> iov(arena_.count());
    for (uint32_t i = 0; i < arena_.count(); ++i) {
      iov[i] = {arena_.buffer(i), arena_.buffer_bytes()};
    }
    r = io_uring_register_buffers(&ring_, iov.data(), static_cast<unsigned>(iov.size()));
    registered_ = r == 0;
    if (!registered_) {
      log::Warn(ErrnoStatus(-r, c.what + ": io_uring_register_buffers (raise RLIMIT_MEMLOCK); "
                                         "using unregistered buffers")
                    .message());
    }
    fixed_file_ = io_uring_register_files(&ring_, &fd_, 1) == 0;
    return Status::OK();
  }

  void Run(std::span<RawIo> ios) override {
    if (broken_ != 0) {
      for (RawIo& io : ios) io.result = broken_;
      return;
    }
    NoteInFlight(0);
    for (size_t i = 0; i < ios.size(); ++i) Prepare(ios[i], i);
    size_t unsubmitted = ios.size(), completed = 0;
    while (completed < ios.size()) {
      int r;
      if (unsubmitted > 0) {
        r = io_uring_submit_and_wait(&ring_, 1);
        if (r > 0) unsubmitted -= std::min<size_t>(unsubmitted, size_t(r));
      } else {
        io_uring_cqe* cqe = nullptr;
        r = io_uring_wait_cqe(&ring_, &cqe);
      }
      NoteInFlight(static_cast<uint32_t>(ios.size() - completed));
      size_t reaped = Reap(ios);
      completed += reaped;
      if (r >= 0 || r == -EINTR) continue;
      if (r == -EAGAIN || r == -EBUSY) {
        if (reaped == 0) sched_yield();
        continue;
      }
      Abandon(ios, ios.size() - unsubmitted - completed, r);
      return;
    }
  }

  // Keeps up to depth() transfers in flight: each completion is handed to
  // the stream and its buffer refilled; the refills are submitted before
  // the stream drains (verifies) what completed, so that work overlaps the
  // transfers in flight instead of delaying the next ones.
  void RunStream(RawStream& stream) override {
    if (broken_ != 0) return RawQueue::RunStream(stream);  // fails every io
    StreamState st(depth());
    bool more = true;
    while (true) {
      more = more && Refill(stream, st);
      if (st.in_flight == 0) return stream.Drain();
      int r = SubmitStream(st, 0);
      if (!Fatal(r)) {
        stream.Drain();
        r = SubmitStream(st, 1);
      }
      if (Fatal(r)) return AbandonStream(stream, st, r);
      ReapStream(stream, st);
    }
  }

  std::string_view engine() const override { return "uring"; }
  bool registered_buffers() const override { return registered_; }
  bool supports_direct() const override { return true; }

 private:
  void Prepare(RawIo& io, size_t index) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);  // never null: depth entries, batch <= depth
    std::byte* buf = arena_.buffer(io.buffer);
    const int file = fixed_file_ ? 0 : fd_;
    const bool read = io.kind == IoKind::kRead;
    if (io.direct != nullptr) {
      const int n = DirectIovecs(&io, buf);
      if (read) {
        io_uring_prep_readv(sqe, file, io.iov, static_cast<unsigned>(n), io.offset);
      } else {
        io_uring_prep_writev(sqe, file, io.iov, static_cast<unsigned>(n), io.offset);
      }
    } else if (registered_ && read) {
      io_uring_prep_read_fixed(sqe, file, buf, io.length, io.offset, int(io.buffer));
    } else if (registered_) {
      io_uring_prep_write_fixed(sqe, file, buf, io.length, io.offset, int(io.buffer));
    } else if (read) {
      io_uring_prep_read(sqe, file, buf, io.length, io.offset);
    } else {
      io_uring_prep_write(sqe, file, buf, io.length, io.offset);
    }
    if (fixed_file_) sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(sqe, index);
    io.result = kNoResult;
  }

  size_t Reap(std::span<RawIo> ios) {
    unsigned head = 0, count = 0;
    io_uring_cqe* cqe = nullptr;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      ios[io_uring_cqe_get_data64(cqe)].result = cqe->res;
      ++count;
    }
    io_uring_cq_advance(&ring_, count);
    return count;
  }

  struct StreamState {
    explicit StreamState(uint32_t depth) : slot(depth), busy(depth, false) {
      for (uint32_t b = depth; b-- > 0;) free_buffers.push_back(b);
    }
    std::vector<RawIo> slot;  // by buffer
    std::vector<bool> busy;   // prepared and not yet completed
    std::vector<uint32_t> free_buffers;
    std::vector<uint32_t> reaped;
    size_t in_flight = 0;     // prepared, not completed
    size_t unsubmitted = 0;   // prepared, not yet taken by the kernel
  };

  // Submits what is prepared and waits for `wait` completions; returns
  // io_uring_submit_and_wait's result.
  int SubmitStream(StreamState& st, unsigned wait) {
    if (st.unsubmitted == 0 && wait == 0) return 0;
    int r = io_uring_submit_and_wait(&ring_, wait);
    if (r > 0) st.unsubmitted -= std::min<size_t>(st.unsubmitted, size_t(r));
    return r;
  }

  static bool Fatal(int r) { return r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY; }

  // Prepares transfers for every free buffer; false once the stream is dry.
  bool Refill(RawStream& stream, StreamState& st) {
    NoteInFlight(static_cast<uint32_t>(st.in_flight));
    while (!st.free_buffers.empty()) {
      uint32_t b = st.free_buffers.back();
      if (!stream.Next(b, &st.slot[b])) return false;
      st.free_buffers.pop_back();
      st.slot[b].buffer = b;
      Prepare(st.slot[b], b);
      st.busy[b] = true;
      ++st.in_flight;
      ++st.unsubmitted;
    }
    return true;
  }

  void Finish(RawStream& stream, StreamState& st, uint32_t b) {
    st.busy[b] = false;
    --st.in_flight;
    stream.Complete(st.slot[b]);
    st.free_buffers.push_back(b);
  }

  size_t ReapStream(RawStream& stream, StreamState& st) {
    NoteInFlight(static_cast<uint32_t>(st.in_flight));
    unsigned head = 0, count = 0;
    io_uring_cqe* cqe = nullptr;
    st.reaped.clear();
    io_uring_for_each_cqe(&ring_, head, cqe) {
      uint32_t b = static_cast<uint32_t>(io_uring_cqe_get_data64(cqe));
      st.slot[b].result = cqe->res;
      st.reaped.push_back(b);
      ++count;
    }
    io_uring_cq_advance(&ring_, count);
    for (uint32_t b : st.reaped) Finish(stream, st, b);
    return count;
  }

  // The ring failed with `err`: waits for the transfers the kernel holds,
  // fails the prepared ones it never took and the rest of the stream, and
  // retires the ring (unsubmitted entries are stuck in it).
  void AbandonStream(RawStream& stream, StreamState& st, int err) {
    size_t in_kernel = st.in_flight - st.unsubmitted;
    while (in_kernel > 0) {
      io_uring_cqe* cqe = nullptr;
      if (io_uring_wait_cqe(&ring_, &cqe) < 0) continue;
      in_kernel -= std::min(in_kernel, ReapStream(stream, st));
    }
    for (uint32_t b = 0; b < st.busy.size(); ++b) {
      if (!st.busy[b]) continue;
      st.slot[b].result = err;
      Finish(stream, st, b);
    }
    stream.Drain();
    broken_ = err;
    log::Error("io_uring submission failed: " + ErrnoStatus(-err, "io_uring_enter").message());
    RawQueue::RunStream(stream);
  }

  // The ring failed with `err`: waits for the `in_flight` submitted ios (the
  // kernel still writes into their buffers), fails the rest, and retires the
  // ring (unsubmitted entries are stuck in it).
  void Abandon(std::span<RawIo> ios, size_t in_flight, int err) {
    while (in_flight > 0) {
      io_uring_cqe* cqe = nullptr;
      if (io_uring_wait_cqe(&ring_, &cqe) < 0) continue;
      in_flight -= std::min(in_flight, Reap(ios));
    }
    for (RawIo& io : ios) {
      if (io.result == kNoResult) io.result = err;
    }
    broken_ = err;
    log::Error("io_uring submission failed: " + ErrnoStatus(-err, "io_uring_enter").message());
  }

  int fd_;
  io_uring ring_{};
  bool ring_ready_ = false;
  bool registered_ = false;
  bool fixed_file_ = false;
  int broken_ = 0;  // -errno once the ring is unusable
};

}  // namespace

Status CheckUringAvailable(const std::string& what) {
  io_uring ring{};
  int r = io_uring_queue_init(2, &ring, 0);
  if (r < 0) return RingError(r, what);
  io_uring_queue_exit(&ring);
  return Status::OK();
}

Result<std::unique_ptr<RawQueue>> NewUringQueue(const EngineConfig& config, BufferArena arena) {
  std::unique_ptr<UringQueue> q(new UringQueue(config.fd, std::move(arena)));
  KVP_RETURN_IF_ERROR(q->Init(config));
  return std::unique_ptr<RawQueue>(std::move(q));
}

}  // namespace kvpool
