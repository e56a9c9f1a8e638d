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
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (SegmentIo* op : ops) (op->kind == IoKind::kRead ? reads_ : writes_).push_back(op);
  }
  if (ops.size() == 1) {
    cv_.notify_one();
  } else {
    cv_.notify_all();
  }
}

bool DeviceRunner::TakeBatch(std::vector<SegmentIo*>* batch) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return stopping_ || !reads_.empty() || !writes_.empty(); });
  if (reads_.empty() && writes_.empty()) return false;  // stopping and drained
  const size_t limit = BatchLimit();
  auto& source = !reads_.empty() ? reads_ : writes_;
  while (!source.empty() && batch->size() < limit) {
    batch->push_back(source.front());
    source.pop_front();
  }
  if (active_workers_++ == 0) busy_since_ = Clock::now();
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
  size_t depth = std::max<uint32_t>(1, device_->options().queue_depth);
  return std::max<size_t>(depth * 8, 256);
}

// Checksums writes just before they are issued and verifies reads as each
// completes, then hands the op back to its owner.
class DeviceRunner::Sink final : public IoStreamSink {
 public:
  explicit Sink(DeviceRunner* runner) : runner_(runner) {}

  void BeforeIssue(SegmentIo& op) override {
    if (op.kind == IoKind::kWrite) op.checksum = Checksum64(op.buffer, op.length);
    op.status = Status::OK();
  }

  void Done(SegmentIo& op) override {
    if (op.kind == IoKind::kRead && op.status.ok() &&
        Checksum64(op.buffer, op.length) != op.checksum) {
      op.status = Status::Corruption("device '" + runner_->device_->name() + "' slot " +
                                     std::to_string(op.slot) + ": checksum mismatch");
    }
    runner_->Account(op);
    op.owner->OnIoComplete(op);
  }

 private:
  DeviceRunner* runner_;
};

void DeviceRunner::RunBatch(IoQueue* queue, std::vector<SegmentIo*>& batch) {
  Sink sink(this);
  queue->ExecuteStreaming(batch, sink);
  BusyEnd();
}

void DeviceRunner::BusyEnd() {
  std::lock_guard<std::mutex> lock(mu_);
  if (--active_workers_ == 0) {
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - busy_since_);
    counters_.busy_ns.fetch_add(static_cast<uint64_t>(ns.count()), std::memory_order_relaxed);
  }
}

void DeviceRunner::Account(const SegmentIo& op) {
  if (op.kind == IoKind::kRead) {
    counters_.reads.fetch_add(1, std::memory_order_relaxed);
    if (op.status.ok()) counters_.bytes_read.fetch_add(op.length, std::memory_order_relaxed);
  } else {
    counters_.writes.fetch_add(1, std::memory_order_relaxed);
    if (op.status.ok()) counters_.bytes_written.fetch_add(op.length, std::memory_order_relaxed);
  }
  if (op.status.ok()) {
    consecutive_failures_.store(0, std::memory_order_relaxed);
    return;
  }
  counters_.errors.fetch_add(1, std::memory_order_relaxed);
  log::Warn(op.status.ToString());
  // Checksum mismatches are data faults; only I/O failures count towards quarantine.
  if (op.status.code() == StatusCode::kCorruption) return;
  if (consecutive_failures_.fetch_add(1) + 1 >= kFailuresBeforeQuarantine &&
      in_placement_.exchange(false)) {
    log::Error("device '" + device_->name() + "' failed " +
               std::to_string(kFailuresBeforeQuarantine) +
               " operations in a row: taken out of placement");
  }
}

uint64_t DeviceRunner::queued_read_bytes() const { return 0; }

double DeviceRunner::live_read_gibps() const { return 0; }

double DeviceRunner::busy_seconds() const {
  std::lock_guard<std::mutex> lock(mu_);
  double open = active_workers_ > 0 ? SecondsSince(busy_since_) : 0;  // interval in progress
  return static_cast<double>(counters_.busy_ns.load(std::memory_order_relaxed)) / 1e9 + open;
}

}  // namespace kvpool
