#include "tier/spdk/spdk_queue.h"

#include <sched.h>
#include <spdk/env.h>
#include <spdk/nvme.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "util/log.h"

namespace kvpool {
namespace {

constexpr int64_t kNoResult = INT64_MIN;
constexpr uint32_t kYieldEvery = 64;  // empty polls between sched_yield and timeout checks

uint64_t NowNs() {
  return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::steady_clock::now().time_since_epoch())
                      .count());
}

uint64_t ThreadCpuNs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

class SpdkQueue final : public RawQueue {
 public:
  SpdkQueue(std::shared_ptr<SpdkController> c, spdk_nvme_qpair* qpair, BufferArena arena)
      : RawQueue(std::move(arena)),
        ctrl_(std::move(c)),
        qpair_(qpair),
        pending_(depth()),
        slots_(depth()) {
    for (uint32_t b = 0; b < depth(); ++b) pending_[b] = Pending{this, nullptr, b, 0, false};
    done_.reserve(depth());
    free_.reserve(depth());
  }
  ~SpdkQueue() override {
    if (qpair_ != nullptr) spdk_nvme_ctrlr_free_io_qpair(qpair_);
  }

  void Run(std::span<RawIo> ios) override {
    Meter meter(this);
    done_.clear();
    for (RawIo& io : ios) Submit(io, io.buffer);
    while (in_flight_ > 0) Poll();
    done_.clear();
  }

  // Keeps up to depth() transfers in flight; each completion is handed to
  // the stream while the others proceed, and its buffer refilled. The
  // refills are submitted before the stream drains what completed.
  void RunStream(RawStream& stream) override {
    Meter meter(this);
    free_.clear();
    for (uint32_t b = depth(); b-- > 0;) free_.push_back(b);
    done_.clear();
    bool more = true;
    while (true) {
      while (more && !free_.empty()) {
        const uint32_t b = free_.back();
        if (!stream.Next(b, &slots_[b])) {
          more = false;
          break;
        }
        free_.pop_back();
        slots_[b].buffer = b;
        Submit(slots_[b], b);
      }
      stream.Drain();
      if (in_flight_ == 0 && done_.empty()) return;
      if (done_.empty()) Poll();
      if (!more && in_flight_ == 0) meter.Flush();  // counted before the caller hears "done"
      for (uint32_t b : done_) {
        stream.Complete(slots_[b]);
        free_.push_back(b);
      }
      done_.clear();
    }
  }

  std::string_view engine() const override { return "spdk"; }
  bool registered_buffers() const override { return true; }  // DMA-able, driver-mapped
  bool supports_direct() const override { return true; }
  // NVMe/TCP moves payloads through sockets, from any memory; PCIe and
  // RDMA need memory SPDK can translate (registered with it).
  bool DirectOk(const std::byte* memory, size_t bytes) const override {
    return ctrl_->tcp() || Translatable(memory, bytes);
  }

 private:
  struct Pending {
    SpdkQueue* queue;
    RawIo* io;
    uint32_t buffer;
    uint64_t start_ns;
    bool busy;
    // A direct transfer's scatter list (io->iov) and the driver's cursor in it.
    int iovcnt = 0;
    int sge = 0;
    uint32_t sge_offset = 0;
  };

  // Every 2 MiB page of [memory, memory + bytes) has an address for the device.
  static bool Translatable(const std::byte* memory, size_t bytes) {
    constexpr uintptr_t kPage = uintptr_t{2} << 20;
    const uintptr_t end = reinterpret_cast<uintptr_t>(memory) + bytes;
    for (uintptr_t a = reinterpret_cast<uintptr_t>(memory); a < end; a = (a | (kPage - 1)) + 1) {
      uint64_t size = end - a;
      if (spdk_vtophys(reinterpret_cast<const void*>(a), &size) == SPDK_VTOPHYS_ERROR) {
        return false;
      }
    }
    return true;
  }

  // The driver's scatter-list callbacks (spdk_nvme_ns_cmd_readv/writev):
  // position the cursor `offset` bytes into the transfer, then hand out
  // the rest of the list one entry at a time.
  static void ResetSgl(void* arg, uint32_t offset) {
    auto* p = static_cast<Pending*>(arg);
    p->sge = 0;
    while (p->sge < p->iovcnt && offset >= p->io->iov[p->sge].iov_len) {
      offset -= static_cast<uint32_t>(p->io->iov[p->sge++].iov_len);
    }
    p->sge_offset = offset;
  }
  static int NextSge(void* arg, void** address, uint32_t* length) {
    auto* p = static_cast<Pending*>(arg);
    if (p->sge >= p->iovcnt) return -1;
    const iovec& v = p->io->iov[p->sge++];
    *address = static_cast<std::byte*>(v.iov_base) + p->sge_offset;
    *length = static_cast<uint32_t>(v.iov_len) - p->sge_offset;
    p->sge_offset = 0;
    return 0;
  }

  // Adds the wall and thread CPU time of one Run/RunStream, and its polls,
  // to the controller's stats.
  class Meter {
   public:
    explicit Meter(SpdkQueue* q) : q_(q), wall_(NowNs()), cpu_(ThreadCpuNs()) {}
    ~Meter() { Flush(); }
    void Flush() {
      SpdkPollStats& s = q_->ctrl_->stats();
      const uint64_t wall = NowNs(), cpu = ThreadCpuNs();
      s.wait_ns.fetch_add(wall - std::exchange(wall_, wall), std::memory_order_relaxed);
      s.cpu_ns.fetch_add(cpu - std::exchange(cpu_, cpu), std::memory_order_relaxed);
      s.polls.fetch_add(std::exchange(q_->polls_, 0), std::memory_order_relaxed);
      s.empty_polls.fetch_add(std::exchange(q_->empty_polls_, 0), std::memory_order_relaxed);
    }

   private:
    SpdkQueue* q_;
    uint64_t wall_, cpu_;
  };

  static void OnDone(void* arg, const spdk_nvme_cpl* cpl) {
    auto* p = static_cast<Pending*>(arg);
    SpdkQueue* q = p->queue;
    if (!p->busy) return;
    if (spdk_nvme_cpl_is_error(cpl) && q->breaking_ == 0 && !q->warned_) {
      q->warned_ = true;
      log::Warn(q->ctrl_->what() +
                ": NVMe command failed: " + spdk_nvme_cpl_get_status_string(&cpl->status));
    }
    const int64_t failed = q->breaking_ != 0 ? q->breaking_ : -EIO;
    q->Finish(*p, spdk_nvme_cpl_is_error(cpl) ? failed : int64_t(p->io->length));
  }

  void Finish(Pending& p, int64_t result) {
    p.busy = false;
    p.io->result = result;
    NoteInFlight(static_cast<uint32_t>(in_flight_--));
    done_.push_back(p.buffer);
  }

  void Submit(RawIo& io, uint32_t b) {
    if (broken_ == 0 && ctrl_->failed()) Break(-EIO, "");
    if (broken_ != 0) {
      io.result = broken_;
      done_.push_back(b);
      return;
    }
    Pending& p = pending_[b];
    p.io = &io;
    p.start_ns = NowNs();
    p.busy = true;
    NoteInFlight(static_cast<uint32_t>(in_flight_++));
    io.result = kNoResult;
    p.iovcnt = io.direct != nullptr ? DirectIovecs(&io, arena_.buffer(b)) : 0;
    while (p.busy) {
      const int rc = SubmitCommand(p);
      if (rc == 0) return;
      if (rc == -ENOMEM && in_flight_ > 1) {  // out of request objects: reap, retry
        Poll();
        continue;
      }
      if (!p.busy) return;  // -EFAULT: the driver has already completed it as failed
      Finish(p, rc < 0 ? rc : -EIO);
      if (rc == -ENXIO) Break(-EIO, "its I/O qpair disconnected");
    }
  }

  // One NVMe read or write of p.io: from the arena buffer, or for a direct
  // transfer from its scatter list (header block, caller memory, tail).
  int SubmitCommand(Pending& p) {
    const RawIo& io = *p.io;
    const uint32_t sector = ctrl_->sector_bytes();
    const uint64_t lba = io.offset / sector;
    const uint32_t count = io.length / sector;
    const bool read = io.kind == IoKind::kRead;
    if (p.iovcnt > 0) {
      return read ? spdk_nvme_ns_cmd_readv(ctrl_->ns(), qpair_, lba, count, OnDone, &p, 0,
                                           ResetSgl, NextSge)
                  : spdk_nvme_ns_cmd_writev(ctrl_->ns(), qpair_, lba, count, OnDone, &p, 0,
                                            ResetSgl, NextSge);
    }
    void* buf = arena_.buffer(p.buffer);
    return read ? spdk_nvme_ns_cmd_read(ctrl_->ns(), qpair_, buf, lba, count, OnDone, &p, 0)
                : spdk_nvme_ns_cmd_write(ctrl_->ns(), qpair_, buf, lba, count, OnDone, &p, 0);
  }

  void Poll() {
    ++polls_;
    const int32_t n = spdk_nvme_qpair_process_completions(qpair_, 0);
    if (n > 0) return;
    if (n < 0) {
      return Break(-EIO, "its I/O qpair disconnected (" + std::string(std::strerror(-n)) + ")");
    }
    ++empty_polls_;
    if (ctrl_->failed()) return Break(-EIO, "");
    if (empty_polls_ % kYieldEvery != 0) return;
    const uint64_t now = NowNs(), timeout = SpdkController::TimeoutNs();
    for (const Pending& p : pending_) {
      if (p.busy && now - p.start_ns > timeout) {
        return Break(-ETIMEDOUT,
                     "a command timed out after " + std::to_string(timeout / 1000000) + " ms");
      }
    }
    sched_yield();
  }

  // Retires the qpair: the controller is failed (with `reason`, unless
  // empty), every transfer in flight fails with `err`, and so will every
  // later one.
  void Break(int err, const std::string& reason) {
    if (!reason.empty()) ctrl_->Fail(reason);
    breaking_ = err;
    if (qpair_ != nullptr) spdk_nvme_ctrlr_free_io_qpair(qpair_);  // aborts what is in flight
    qpair_ = nullptr;
    for (Pending& p : pending_) {
      if (p.busy) Finish(p, err);
    }
    broken_ = err;
  }

  std::shared_ptr<SpdkController> ctrl_;
  spdk_nvme_qpair* qpair_;
  std::vector<Pending> pending_;  // by buffer
  std::vector<RawIo> slots_;      // RunStream's transfers, by buffer
  std::vector<uint32_t> done_;    // buffers completed, not yet handed back
  std::vector<uint32_t> free_;
  size_t in_flight_ = 0;
  int breaking_ = 0;  // -errno given to transfers aborted while retiring
  int broken_ = 0;    // -errno once the qpair is retired
  bool warned_ = false;
  uint64_t polls_ = 0, empty_polls_ = 0;
};

}  // namespace

Result<std::unique_ptr<RawQueue>> NewSpdkQueue(std::shared_ptr<SpdkController> c, uint32_t depth,
                                               size_t buffer_bytes) {
  const size_t bytes = size_t{depth} * buffer_bytes;
  void* mem = spdk_dma_zmalloc(bytes, 4096, nullptr);
  if (mem == nullptr) {
    return Status::NoSpace(c->what() + ": spdk_dma_zmalloc of " + std::to_string(bytes) +
                           " bytes of I/O buffers failed (" + c->env().Describe() +
                           "; raise KVPOOL_SPDK_MEM_MB or reserve more hugepages, docs/spdk.md)");
  }
  BufferArena arena = BufferArena::Adopt(static_cast<std::byte*>(mem), depth, buffer_bytes,
                                         c->env().hugepages, spdk_dma_free);
  spdk_nvme_qpair* qpair = c->NewQpair(depth, buffer_bytes);
  if (qpair == nullptr) {
    std::string why = c->failed() ? ": controller failed: " + c->failure() : "";
    return Status::IOError(c->what() + ": cannot allocate an I/O qpair on '" + c->transport() +
                           "'" + why);
  }
  return std::unique_ptr<RawQueue>(new SpdkQueue(std::move(c), qpair, std::move(arena)));
}

}  // namespace kvpool
