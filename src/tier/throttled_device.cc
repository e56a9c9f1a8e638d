#include "tier/throttled_device.h"

#include <chrono>
#include <mutex>
#include <thread>

#include "util/clock.h"

namespace kvpool {
namespace {

class Timeline {
 public:
  explicit Timeline(double bytes_per_second) : bytes_per_second_(bytes_per_second) {}

  // Reserves the device for `bytes`; returns when the reservation starts.
  Clock::time_point Reserve(uint64_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    Clock::time_point start = std::max(Clock::now(), next_free_);
    next_free_ = start + Duration(bytes);
    return start;
  }

  Clock::duration Duration(uint64_t bytes) const {
    return std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(static_cast<double>(bytes) / bytes_per_second_));
  }

 private:
  double bytes_per_second_;
  std::mutex mu_;
  Clock::time_point next_free_{};
};

class ThrottledQueue final : public IoQueue {
 public:
  ThrottledQueue(std::unique_ptr<IoQueue> inner, Timeline* timeline)
      : inner_(std::move(inner)), timeline_(timeline) {}

  // The batch is reserved on the timeline at once; each op completes at its
  // own point of the reservation, so completions (and layer callbacks)
  // arrive at the emulated device's pace rather than once per batch.
  void ExecuteStreaming(std::span<SegmentIo* const> ops, IoStreamSink& sink) override {
    uint64_t bytes = 0;
    for (SegmentIo* op : ops) {
      sink.BeforeIssue(*op);
      bytes += op->length;
    }
    Clock::time_point start = timeline_->Reserve(bytes);
    inner_->Execute(ops);
    uint64_t done = 0;
    for (SegmentIo* op : ops) {
      done += op->length;
      std::this_thread::sleep_until(start + timeline_->Duration(done));
      sink.Done(*op);
    }
  }

  void Execute(std::span<SegmentIo* const> ops) override {
    uint64_t bytes = 0;
    for (const SegmentIo* op : ops) bytes += op->length;
    Clock::time_point start = timeline_->Reserve(bytes);
    inner_->Execute(ops);
    std::this_thread::sleep_until(start + timeline_->Duration(bytes));
  }

 private:
  std::unique_ptr<IoQueue> inner_;
  Timeline* timeline_;
};

class ThrottledDevice final : public Device {
 public:
  ThrottledDevice(std::unique_ptr<Device> inner, double gibps)
      : Device(inner->options(), inner->geometry()),
        inner_(std::move(inner)),
        gibps_(gibps),
        timeline_(gibps * double(1ull << 30)) {}

  Result<std::unique_ptr<IoQueue>> NewIoQueue() override {
    auto q = inner_->NewIoQueue();
    if (!q.ok()) return q.status();
    return std::unique_ptr<IoQueue>(new ThrottledQueue(std::move(q).value(), &timeline_));
  }
  bool persistent() const override { return inner_->persistent(); }
  std::vector<RecoveredSegment> TakeRecovered() override { return inner_->TakeRecovered(); }
  void ReleaseSlot(uint32_t slot) override { inner_->ReleaseSlot(slot); }
  Status Checkpoint() override { return inner_->Checkpoint(); }
  void DropCaches() override { inner_->DropCaches(); }
  std::string Describe() const override {
    return inner_->Describe() + " throttled=" + std::to_string(gibps_) + "GiB/s";
  }

 private:
  std::unique_ptr<Device> inner_;
  double gibps_;
  Timeline timeline_;
};

}  // namespace

std::unique_ptr<Device> NewThrottledDevice(std::unique_ptr<Device> inner, double gibps) {
  return std::make_unique<ThrottledDevice>(std::move(inner), gibps);
}

}  // namespace kvpool
