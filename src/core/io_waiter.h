// Waits for a known number of SegmentIo completions; keeps the first error.
// For code that drives a DeviceRunner directly (probe, device benchmark).
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
    std::vector<SegmentIo*> ptrs;
    for (SegmentIo& op : ops) {
      op.owner = this;
      ptrs.push_back(&op);
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      left_ = ops.size();
      error_ = Status::OK();
    }
    if (ops.empty()) return Status::OK();
    runner.Submit(ptrs);
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
