#include "core/device_runner.h"

#include <string>

#include "util/checksum.h"
#include "util/log.h"

namespace kvpool {

DeviceRunner::DeviceRunner(std::unique_ptr<Device> device, uint16_t id)
    : device_(std::move(device)), id_(id), slots_(device_->geometry().slot_count) {}

Result<std::unique_ptr<DeviceRunner>> DeviceRunner::Start(std::unique_ptr<Device> device,
                                                          uint16_t id, RunnerTuning tuning) {
  std::unique_ptr<DeviceRunner> r(new DeviceRunner(std::move(device), id));
  r->tuning_ = tuning;
  uint32_t threads = std::max<uint32_t>(1, r->device_->options().io_threads);
  for (uint32_t i = 0; i < threads; ++i) {
    auto q = r->device_->NewIoQueue();
    if (!q.ok()) return q.status();
    r->queues_.push_back(std::move(q).value());
  }
  for (auto& q : r->queues_) {
    IoQueue* raw = q.get();
    r->workers_.emplace_back([runner = r.get(), raw] { runner->WorkerLoop(raw); });
  }
  return r;
}

DeviceRunner::~DeviceRunner() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void DeviceRunner::Submit(std::span<SegmentIo* const> ops) {
  if (ops.empty()) return;
  uint64_t read_bytes = 0;
  for (const SegmentIo* op : ops) {
    if (op->kind == IoKind::kRead) read_bytes += op->length;
  }
  // Raised before any op is visible to a worker, so it never dips below zero.
  if (read_bytes > 0) queued_read_bytes_.fetch_add(read_bytes, std::memory_order_relaxed);
  const Clock::time_point now = Clock::now();
  // Notified under the lock: once it is released, a worker may finish these
  // ops and their owner may close the pool, destroying this runner, so the
  // unlock must be the caller's last touch of it (a worker of another device
  // submits fallback and promotion ops here).
  std::lock_guard<std::mutex> lock(mu_);
  for (SegmentIo* op : ops) {
    if (op->kind == IoKind::kRead) {
      reads_.push_back(op);
    } else {
      writes_.push_back(QueuedWrite{op, now});
    }
  }
  if (ops.size() == 1) {
    cv_.notify_one();
  } else {
    cv_.notify_all();
  }
}

bool DeviceRunner::WritesNext(Clock::time_point now) const {
  if (writes_.empty()) return false;
  if (reads_.empty()) return true;
  // Both queued: reads, unless the oldest write is overdue; then alternate.
  return !last_batch_writes_ && now - writes_.front().queued > tuning_.max_write_delay;
}

bool DeviceRunner::TakeBatch(std::vector<SegmentIo*>* batch) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return stopping_ || !reads_.empty() || !writes_.empty(); });
  if (reads_.empty() && writes_.empty()) return false;  // stopping and drained
  const Clock::time_point now = Clock::now();
  const bool writes = WritesNext(now);
  if (writes) {
    const size_t limit = WriteBatchLimit();
    while (!writes_.empty() && batch->size() < limit) {
      batch->push_back(writes_.front().op);
      writes_.pop_front();
    }
  } else {
    const size_t limit = ReadShareLocked();
    while (!reads_.empty() && batch->size() < limit) {
      batch->push_back(reads_.front());
      reads_.pop_front();
    }
  }
  last_batch_writes_ = writes;
  BusyBeginLocked(/*reads=*/!writes, now);
  return true;
}

void DeviceRunner::WorkerLoop(IoQueue* queue) {
  std::vector<SegmentIo*> batch;
  while (true) {
    batch.clear();
    if (!TakeBatch(&batch)) return;
    RunBatch(queue, batch);
  }
}

size_t DeviceRunner::BatchLimit() const {
  return std::max<size_t>(WriteBatchLimit() * 8, 256);
}

size_t DeviceRunner::ReadShareLocked() const {
  // The calling worker is not yet counted in active_workers_.
  const size_t busy = std::min<size_t>(active_workers_, queues_.size());
  const size_t idle = std::max<size_t>(1, queues_.size() - busy);
  const size_t share = (reads_.size() + idle - 1) / idle;
  return std::min(BatchLimit(), share);
}

size_t DeviceRunner::ExtendLimit() const { return 4 * BatchLimit(); }

size_t DeviceRunner::WriteBatchLimit() const {
  return std::max<uint32_t>(1, device_->options().queue_depth);
}

// Checksums writes just before they are issued and verifies reads as each
// completes, then hands the op back to its owner.
class DeviceRunner::Sink final : public IoStreamSink {
 public:
  // What a read delivered: hashed by the device during its copy, or here.
  static uint64_t ReadChecksum(const SegmentIo& op) {
    return op.delivered_checksum_known ? op.delivered_checksum : Checksum64(op.buffer, op.length);
  }

  Sink(DeviceRunner* runner, bool reads) : runner_(runner), reads_(reads) {}

  void BeforeIssue(SegmentIo& op) override {
    // A given checksum was just verified against these bytes (device.h).
    if (op.kind == IoKind::kWrite && !op.checksum_given) {
      op.checksum = Checksum64(op.buffer, op.length);
    }
    op.status = Status::OK();
    op.delivered_checksum_known = false;
  }

  void Done(SegmentIo& op) override {
    if (op.kind == IoKind::kRead && op.status.ok() && ReadChecksum(op) != op.checksum) {
      op.status = Status::Corruption("device '" + runner_->device_->name() + "' slot " +
                                     std::to_string(op.slot) + ": checksum mismatch");
    }
    runner_->Account(op);
    if (op.kind == IoKind::kRead) {
      runner_->queued_read_bytes_.fetch_sub(op.length, std::memory_order_relaxed);
    }
    op.owner->OnIoComplete(op);  // may end op's lifetime
  }

  // A read batch goes on with the reads queued since it was taken, up to
  // ExtendLimit() of them.
  bool Extend(std::vector<SegmentIo*>* more) override {
    if (!reads_ || extended_ >= runner_->ExtendLimit()) return false;
    const size_t before = more->size();
    if (!runner_->TakeMoreReads(more)) return false;
    extended_ += more->size() - before;
    return true;
  }

 private:
  DeviceRunner* runner_;
  const bool reads_;  // the batch's kind
  size_t extended_ = 0;  // reads added by Extend
};

bool DeviceRunner::TakeMoreReads(std::vector<SegmentIo*>* more) {
  std::lock_guard<std::mutex> lock(mu_);
  if (reads_.empty() || WritesNext(Clock::now())) return false;
  const size_t n = std::min(reads_.size(), WriteBatchLimit());
  for (size_t i = 0; i < n; ++i) {
    more->push_back(reads_.front());
    reads_.pop_front();
  }
  return true;
}

void DeviceRunner::RunBatch(IoQueue* queue, std::vector<SegmentIo*>& batch) {
  const bool reads = batch.front()->kind == IoKind::kRead;  // ops may be gone after
  Sink sink(this, reads);
  queue->ExecuteStreaming(batch, sink);
  BusyEnd(reads);
}

void DeviceRunner::BusyBeginLocked(bool reads, Clock::time_point now) {
  if (active_workers_++ == 0) busy_since_ = now;
  if (reads && active_read_batches_++ == 0) read_busy_since_ = now;
}

void DeviceRunner::BusyEnd(bool reads) {
  std::lock_guard<std::mutex> lock(mu_);
  const Clock::time_point now = Clock::now();
  if (--active_workers_ == 0) {
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now - busy_since_);
    counters_.busy_ns.fetch_add(static_cast<uint64_t>(ns.count()), std::memory_order_relaxed);
  }
  if (!reads) return;
  if (--active_read_batches_ == 0) {
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now - read_busy_since_);
    read_busy_ns_ += static_cast<uint64_t>(ns.count());
  }
  SampleReadsLocked(now);
}

void DeviceRunner::SampleReadsLocked(Clock::time_point now) {
  uint64_t busy_ns = read_busy_ns_;
  if (active_read_batches_ > 0) {  // another worker's read batch is still in flight
    busy_ns += static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(now - read_busy_since_).count());
  }
  const uint64_t bytes = counters_.bytes_read.load(std::memory_order_relaxed);
  if (bytes - sample_bytes_ < kLiveSampleBytes || busy_ns <= sample_busy_ns_) return;
  const double gib = static_cast<double>(bytes - sample_bytes_) / double(1ull << 30);
  const double seconds = static_cast<double>(busy_ns - sample_busy_ns_) / 1e9;
  const double gibps = gib / seconds;
  live_ewma_ = live_samples_ == 0 ? gibps : kLiveAlpha * gibps + (1 - kLiveAlpha) * live_ewma_;
  ++live_samples_;
  sample_bytes_ = bytes;
  sample_busy_ns_ = busy_ns;
  if (live_samples_ >= kLiveMinSamples) live_gibps_.store(live_ewma_, std::memory_order_relaxed);
}

double DeviceRunner::in_flight_seconds() const {
  uint64_t ns = 0;
  for (const auto& q : queues_) ns += q->in_flight_ns();
  return static_cast<double>(ns) / 1e9;
}

void DeviceRunner::Account(const SegmentIo& op) {
  if (op.bounced) counters_.bounced_segments.fetch_add(1, std::memory_order_relaxed);
  if (op.kind == IoKind::kRead) {
    counters_.reads.fetch_add(1, std::memory_order_relaxed);
    if (op.status.ok()) counters_.bytes_read.fetch_add(op.length, std::memory_order_relaxed);
  } else {
    counters_.writes.fetch_add(1, std::memory_order_relaxed);
    if (op.status.ok()) counters_.bytes_written.fetch_add(op.length, std::memory_order_relaxed);
  }
  if (op.status.ok()) {
    consecutive_failures_.store(0, std::memory_order_relaxed);
    if (!in_placement_.load(std::memory_order_relaxed) && !in_placement_.exchange(true)) {
      log::Info("device '" + device_->name() + "' answers again: back in placement");
    }
    return;
  }
  counters_.errors.fetch_add(1, std::memory_order_relaxed);
  // A segment a remote tier no longer holds (evicted, expired) is a miss,
  // not a fault; checksum mismatches are data faults. Only I/O failures
  // count towards quarantine.
  if (op.status.code() == StatusCode::kNotFound) return;
  log::Warn(op.status.ToString());
  if (op.status.code() == StatusCode::kCorruption) return;
  if (!in_placement_.load(std::memory_order_relaxed)) {
    quarantined_at_ns_.store(NowNs(), std::memory_order_relaxed);  // a retry failed
    return;
  }
  if (consecutive_failures_.fetch_add(1) + 1 >= kFailuresBeforeQuarantine &&
      in_placement_.exchange(false)) {
    quarantined_at_ns_.store(NowNs(), std::memory_order_relaxed);
    log::Error("device '" + device_->name() + "' failed " +
               std::to_string(kFailuresBeforeQuarantine) + " operations in a row: taken out of placement" +
               (device_->retries_after_quarantine() ? " (retried in 1 s)" : ""));
  }
}

int64_t DeviceRunner::NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

bool DeviceRunner::in_placement() const {
  if (in_placement_.load(std::memory_order_relaxed)) return true;
  if (!device_->retries_after_quarantine()) return false;
  const int64_t since = NowNs() - quarantined_at_ns_.load(std::memory_order_relaxed);
  return since > std::chrono::duration_cast<std::chrono::nanoseconds>(kQuarantineRetry).count();
}

double DeviceRunner::live_read_gibps() const {
  return live_gibps_.load(std::memory_order_relaxed);
}

double DeviceRunner::busy_seconds() const {
  std::lock_guard<std::mutex> lock(mu_);
  double open = active_workers_ > 0 ? SecondsSince(busy_since_) : 0;  // interval in progress
  return static_cast<double>(counters_.busy_ns.load(std::memory_order_relaxed)) / 1e9 + open;
}

}  // namespace kvpool
