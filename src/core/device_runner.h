// Drives one device: a queue of segment operations served by the device's
// worker threads, each with its own IoQueue (one ring per thread).
//
// Scheduling. Each worker takes one batch at a time, all reads or all
// writes; a streaming read batch that has issued its last op goes on with
// the reads queued meanwhile (up to ExtendLimit() more), until none is
// left or a write is due, so that the device's queue does not drain
// between batches. Reads are preferred, so that retrieval is not stuck
// behind offloads, with two bounds:
//  - a read waits for at most one write batch per worker: write batches
//    hold at most queue_depth ops (read batches hold BatchLimit());
//  - writes are not starved by sustained reads: once the oldest queued
//    write has waited longer than RunnerTuning::max_write_delay, write and
//    read batches alternate until no queued write is overdue. A write at
//    the head of the queue therefore starts within about max_write_delay
//    plus one read batch per worker; writes behind it get half the batches.
//
// The runner is the one place where checksums are made (before a write) and
// verified (after a read): a mismatch sets the op's status to Corruption.
// The queue lock is held only to hand ops over, never across I/O.
#pragma once

#include <atomic>
#include <chrono>
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
  std::atomic<uint64_t> bounced_segments{0};  // SegmentIo::bounced
};

struct RunnerTuning {
  // Reads are taken before writes, but once the oldest queued write has
  // waited longer than this, write batches alternate with read batches.
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

  // Bytes of reads submitted and not yet completed (queued or in flight):
  // raised by Submit, lowered as each read completes, before its owner's
  // OnIoComplete runs. Lock-free; any thread.
  uint64_t queued_read_bytes() const {
    return queued_read_bytes_.load(std::memory_order_relaxed);
  }
  // Observed read throughput of the whole device in GiB/s: bytes read
  // successfully divided by the wall time during which at least one read
  // batch was in flight (on any worker, so overlapping batches of several
  // workers are not double counted; time shared with write batches is
  // included). Sampled at the end of a read batch once at least
  // kLiveSampleBytes were read since the previous sample, and smoothed with
  // an EWMA (weight kLiveAlpha per sample). 0 until kLiveMinSamples samples
  // were taken. Lock-free; any thread. (Samples taken within a streaming
  // batch, every few MiB or when it is extended, were tried and read
  // 1.2-1.9x high; ExtendLimit() bounds how long a batch goes unsampled.)
  double live_read_gibps() const;
  // False once the device failed kFailuresBeforeQuarantine ops in a row. A
  // device that retries_after_quarantine() is in again kQuarantineRetry
  // after its last failure (ops then try it; a success readmits it for
  // good, a failure restarts the pause). Lock-free; any thread.
  bool in_placement() const;
  static constexpr std::chrono::milliseconds kQuarantineRetry{1000};
  // Wall time with at least one worker busy, the current interval included.
  double busy_seconds() const;
  // Transfers in flight integrated over time, summed over the workers'
  // queues (IoQueue::in_flight_ns), in transfer-seconds. Any thread.
  double in_flight_seconds() const;

  // Reads a streaming read batch may take on top of its first share: a
  // bound, so that under sustained reads a batch still ends (and
  // live_read_gibps is sampled) every few BatchLimit()s of reads.
  size_t ExtendLimit() const;

  static constexpr uint64_t kLiveSampleBytes = 1ull << 20;
  static constexpr double kLiveAlpha = 0.2;
  static constexpr uint32_t kLiveMinSamples = 3;

 private:
  class Sink;
  struct QueuedWrite {
    SegmentIo* op;
    Clock::time_point queued;  // when Submit queued it
  };

  DeviceRunner(std::unique_ptr<Device> device, uint16_t id);
  void WorkerLoop(IoQueue* queue);
  // Waits for work and takes one batch by the scheduling rule above (all
  // reads or all writes, never empty). Returns false when stopping and
  // drained.
  bool TakeBatch(std::vector<SegmentIo*>* batch);
  // True when the next batch should serve writes. REQUIRES: mu_ held, some
  // op queued.
  bool WritesNext(Clock::time_point now) const;
  // Read ops taken per batch: several queue depths, so that a streaming
  // queue keeps queue_depth transfers in flight while finished ones are
  // checked.
  size_t BatchLimit() const;
  // Read ops the next worker takes: an equal share of the queued reads
  // among the idle workers (at most BatchLimit()), so that one large
  // request is served by every worker of a device with io_threads > 1, not
  // by the first one to wake. REQUIRES: mu_ held.
  size_t ReadShareLocked() const;
  // Write ops taken per batch: queue_depth, so that a read arriving behind
  // a write backlog waits for one ring's worth of writes at most.
  size_t WriteBatchLimit() const;
  void RunBatch(IoQueue* queue, std::vector<SegmentIo*>& batch);
  // Hands a streaming read batch up to queue_depth more queued reads
  // (IoStreamSink::Extend), unless none is queued or a write is due by the
  // scheduling rule; false then, and the batch ends.
  bool TakeMoreReads(std::vector<SegmentIo*>* more);
  void Account(const SegmentIo& op);
  // Busy-time bookkeeping for a batch taken / finished. REQUIRES: mu_ held.
  void BusyBeginLocked(bool reads, Clock::time_point now);
  void BusyEnd(bool reads);
  // Folds the reads since the last sample into live_gibps_ when enough
  // bytes moved. REQUIRES: mu_ held.
  void SampleReadsLocked(Clock::time_point now);

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
  std::atomic<int64_t> quarantined_at_ns_{0};  // steady clock, last failure while out
  static int64_t NowNs();

  std::atomic<uint64_t> queued_read_bytes_{0};
  std::atomic<double> live_gibps_{0};   // written under mu_, read lock-free

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<SegmentIo*> reads_;       // guarded by mu_
  std::deque<QueuedWrite> writes_;     // guarded by mu_, oldest first
  bool last_batch_writes_ = false;     // guarded by mu_: the last batch taken
  bool stopping_ = false;              // guarded by mu_
  uint32_t active_workers_ = 0;        // guarded by mu_
  Clock::time_point busy_since_{};     // guarded by mu_
  // Read busy time: wall time with at least one read batch in flight.
  uint32_t active_read_batches_ = 0;   // guarded by mu_
  Clock::time_point read_busy_since_{};  // guarded by mu_
  uint64_t read_busy_ns_ = 0;          // guarded by mu_, closed intervals only
  // live_read_gibps state, guarded by mu_.
  uint64_t sample_bytes_ = 0;          // counters_.bytes_read at the last sample
  uint64_t sample_busy_ns_ = 0;        // read busy time at the last sample
  double live_ewma_ = 0;
  uint32_t live_samples_ = 0;
  std::vector<std::unique_ptr<IoQueue>> queues_;
  std::vector<std::thread> workers_;
};

}  // namespace kvpool
