// Waits for a known number of SegmentIo completions; keeps the first error.
// For code that drives DeviceRunners directly (probe, device benchmark).
#pragma once

#include <condition_variable>
#include <mutex>
#include <span>
#include <vector>

#include "core/device_runner.h"

namespace kvpool {

class IoWaiter final : public IoOwner {
 public:
  void OnIoComplete(SegmentIo& io) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!io.status.ok() && error_.ok()) error_ = io.status;
    if (--left_ == 0) cv_.notify_all();
  }

  // Submits every op (owner set to this waiter) and waits for all of them.
  Status Run(DeviceRunner& runner, std::span<SegmentIo> ops) {
    DeviceRunner* one = &runner;
    return RunAll(std::span<DeviceRunner* const>(&one, 1), std::span<const std::span<SegmentIo>>(&ops, 1));
  }

  // Submits ops[i] to runners[i] for every i, all before waiting (so the
  // devices work at once), then waits for every op.
  Status RunAll(std::span<DeviceRunner* const> runners, std::span<const std::span<SegmentIo>> ops) {
    std::vector<std::vector<SegmentIo*>> ptrs(runners.size());
    size_t total = 0;
    for (size_t i = 0; i < runners.size(); ++i) {
      for (SegmentIo& op : ops[i]) {
        op.owner = this;
        ptrs[i].push_back(&op);
      }
      total += ptrs[i].size();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      left_ = total;
      error_ = Status::OK();
    }
    if (total == 0) return Status::OK();
    for (size_t i = 0; i < runners.size(); ++i) {
      if (!ptrs[i].empty()) runners[i]->Submit(ptrs[i]);
    }
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return left_ == 0; });
    return error_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  size_t left_ = 0;
  Status error_;
};

}  // namespace kvpool
