// Drives one device: a queue of segment operations served by the device's
// worker threads, each with its own IoQueue (one ring per thread). Reads are
// served before writes so that retrieval is never stuck behind offloads.
//
// The runner is the one place where checksums are made (before a write) and
// verified (after a read): a mismatch sets the op's status to Corruption.
// The queue lock is held only to hand ops over, never across I/O.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/slot_allocator.h"
#include "tier/device.h"
#include "util/clock.h"

namespace kvpool {

struct DeviceCounters {
  std::atomic<uint64_t> reads{0};
  std::atomic<uint64_t> writes{0};
  std::atomic<uint64_t> bytes_read{0};
  std::atomic<uint64_t> bytes_written{0};
  std::atomic<uint64_t> errors{0};
  std::atomic<uint64_t> evicted_segments{0};
  std::atomic<uint64_t> busy_ns{0};
};

struct RunnerTuning {
  // Reads are taken before writes, but a queued write never waits longer
  // than this behind reads.
  std::chrono::milliseconds max_write_delay{20};
};

class DeviceRunner {
 public:
  // Consecutive failed operations after which a device leaves placement.
  static constexpr uint32_t kFailuresBeforeQuarantine = 8;

  // Starts options.io_threads workers. Errors name the device.
  static Result<std::unique_ptr<DeviceRunner>> Start(std::unique_ptr<Device> device,
                                                     uint16_t id, RunnerTuning tuning = {});
  ~DeviceRunner();  // lets queued ops finish, then joins the workers

  // Queues ops; each op's owner->OnIoComplete runs on a worker thread once
  // the op is done. Never blocks on I/O.
  void Submit(std::span<SegmentIo* const> ops);

  Device& device() { return *device_; }
  const Device& device() const { return *device_; }
  uint16_t id() const { return id_; }
  SlotAllocator& slots() { return slots_; }
  const SlotAllocator& slots() const { return slots_; }
  DeviceCounters& counters() { return counters_; }
  const DeviceCounters& counters() const { return counters_; }

  // Placement weight: configured, or probed (jointly with the devices of
  // the same contention group). Set before the pool serves requests.
  double bandwidth_gibps() const { return bandwidth_gibps_; }
  bool bandwidth_probed() const { return bandwidth_probed_; }
  void set_bandwidth(double gibps, bool probed) {
    bandwidth_gibps_ = gibps;
    bandwidth_probed_ = probed;
  }
  // Read bandwidth measured with this device alone (0 when configured).
  double solo_bandwidth_gibps() const { return solo_gibps_; }
  void set_solo_bandwidth(double gibps) { solo_gibps_ = gibps; }
  // Devices with the same group share a bottleneck (a NUMA node's memory,
  // one disk) and were probed together.
  const std::string& contention_group() const { return contention_group_; }
  void set_contention_group(std::string group) { contention_group_ = std::move(group); }

  // Bytes of reads submitted and not yet completed (queued or in flight).
  uint64_t queued_read_bytes() const;
  // Observed read throughput in GiB/s (EWMA over read batches); 0 until
  // enough reads were seen to be meaningful.
  double live_read_gibps() const;
  // False once the device failed kFailuresBeforeQuarantine ops in a row.
  bool in_placement() const { return in_placement_.load(std::memory_order_relaxed); }
  // Wall time with at least one worker busy, the current interval included.
  double busy_seconds() const;

 private:
  class Sink;
  DeviceRunner(std::unique_ptr<Device> device, uint16_t id);
  void WorkerLoop(IoQueue* queue);
  // Takes up to queue_depth ops, reads first. Returns false when stopping.
  bool TakeBatch(std::vector<SegmentIo*>* batch);
  // Ops taken per batch: several queue depths, so that a streaming queue
  // keeps queue_depth transfers in flight while finished ones are checked.
  size_t BatchLimit() const;
  void RunBatch(IoQueue* queue, std::vector<SegmentIo*>& batch);
  void Account(const SegmentIo& op);
  void BusyBegin();
  void BusyEnd();

  std::unique_ptr<Device> device_;
  const uint16_t id_;
  SlotAllocator slots_;
  DeviceCounters counters_;
  double bandwidth_gibps_ = 0;
  bool bandwidth_probed_ = false;
  double solo_gibps_ = 0;
  std::string contention_group_;
  RunnerTuning tuning_;
  std::atomic<bool> in_placement_{true};
  std::atomic<uint32_t> consecutive_failures_{0};

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<SegmentIo*> reads_;
  std::deque<SegmentIo*> writes_;
  bool stopping_ = false;
  uint32_t active_workers_ = 0;        // guarded by mu_
  Clock::time_point busy_since_{};     // guarded by mu_
  std::vector<std::unique_ptr<IoQueue>> queues_;
  std::vector<std::thread> workers_;
};

}  // namespace kvpool
