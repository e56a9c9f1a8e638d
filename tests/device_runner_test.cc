// DeviceRunner scheduling and live metrics: reads are preferred but writes
// are not starved, a read waits for at most one small write batch, and
// queued_read_bytes / live_read_gibps report what the runner sees.
//
// Scheduling tests use SleepDevice, which moves no bytes and takes a fixed
// time per op (optionally held at a gate), so batch order shows in
// completion counts rather than in bandwidth. The live-throughput tests use
// a throttled DRAM device.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "core/device_runner.h"
#include "core/io_waiter.h"
#include "test_util.h"
#include "util/aligned_buffer.h"
#include "util/checksum.h"
#include "util/clock.h"

namespace kvpool::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::microseconds;

constexpr uint32_t kSlotBytes = 4096;
constexpr uint32_t kSlots = 1024;

// Holds ops until released. Each op takes one permit before it runs.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = true;
  uint64_t permits = 0;  // ops allowed through while closed
  uint32_t waiting = 0;  // ops blocked right now
  std::atomic<uint32_t> streams{0};  // ExecuteStreaming calls: batches taken

  void Pass() {
    std::unique_lock<std::mutex> lock(mu);
    ++waiting;
    cv.notify_all();
    cv.wait(lock, [&] { return open || permits > 0; });
    if (!open) --permits;
    --waiting;
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mu);
    open = true;
    cv.notify_all();
  }
  void Close() {
    std::lock_guard<std::mutex> lock(mu);
    open = false;
  }
  void Release(uint64_t n) {
    std::lock_guard<std::mutex> lock(mu);
    permits += n;
    cv.notify_all();
  }
  // Waits until `n` ops are blocked at the gate.
  void AwaitWaiting(uint32_t n) {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return waiting >= n; });
  }
  // The same, giving up after `timeout`; true when `n` were blocked.
  bool AwaitWaitingFor(uint32_t n, milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, timeout, [&] { return waiting >= n; });
  }
};

// Each op passes the gate, sleeps `op_time` and completes, in issue order.
// Reads leave the buffer untouched, writes do not store anything. Like a
// queue that keeps transfers in flight, a stream asks its sink for more ops
// once it has issued those it was given (IoStreamSink::Extend).
class SleepQueue final : public IoQueue {
 public:
  SleepQueue(microseconds op_time, Gate* gate) : op_time_(op_time), gate_(gate) {}

  void Execute(std::span<SegmentIo* const> ops) override {
    for (SegmentIo* op : ops) Run(*op);
  }
  void ExecuteStreaming(std::span<SegmentIo* const> ops, IoStreamSink& sink) override {
    gate_->streams.fetch_add(1);
    std::vector<SegmentIo*> current(ops.begin(), ops.end()), more;
    while (!current.empty()) {
      for (SegmentIo* op : current) {
        sink.BeforeIssue(*op);
        Run(*op);
        sink.Done(*op);  // op may be gone after this
      }
      more.clear();
      if (!sink.Extend(&more)) break;
      current.swap(more);
    }
  }

 private:
  void Run(SegmentIo& op) {
    gate_->Pass();
    if (op_time_.count() > 0) std::this_thread::sleep_for(op_time_);
    op.status = Status::OK();
  }

  microseconds op_time_;
  Gate* gate_;
};

class SleepDevice final : public Device {
 public:
  SleepDevice(DeviceOptions options, microseconds op_time, Gate* gate)
      : Device(std::move(options), DeviceGeometry{uint64_t{kSlots} * kSlotBytes, kSlots, kSlotBytes}),
        op_time_(op_time),
        gate_(gate) {}

  Result<std::unique_ptr<IoQueue>> NewIoQueue() override {
    return std::unique_ptr<IoQueue>(new SleepQueue(op_time_, gate_));
  }

 private:
  microseconds op_time_;
  Gate* gate_;
};

std::unique_ptr<DeviceRunner> StartSleepRunner(microseconds op_time, Gate* gate,
                                               uint32_t queue_depth, RunnerTuning tuning = {},
                                               uint32_t io_threads = 1) {
  DeviceOptions o;
  o.name = "sleep";
  o.capacity_bytes = uint64_t{kSlots} * kSlotBytes;
  o.io_threads = io_threads;
  o.queue_depth = queue_depth;
  auto r = DeviceRunner::Start(std::make_unique<SleepDevice>(o, op_time, gate), 0, tuning);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : nullptr;
}

// A page of zeros: reads of it verify (the sleep device never writes it).
const std::byte* ZeroPage() {
  alignas(4096) static const std::byte page[kSlotBytes] = {};
  return page;
}

// A group of ops with one owner; records how many completed and when the
// last one did. Reusable once complete.
class OpGroup final : public IoOwner {
 public:
  OpGroup(IoKind kind, size_t n, uint32_t length = kSlotBytes) : ops_(n) {
    for (size_t i = 0; i < n; ++i) {
      SegmentIo& op = ops_[i];
      op.kind = kind;
      op.slot = static_cast<uint32_t>(i % kSlots);
      op.length = length;
      op.buffer = const_cast<std::byte*>(ZeroPage());
      op.checksum = Checksum64(op.buffer, length);
      op.owner = this;
      op.index = static_cast<uint32_t>(i);
    }
  }

  // REQUIRES: no op of this group in flight.
  void Submit(DeviceRunner& runner) {
    std::vector<SegmentIo*> ptrs;
    for (SegmentIo& op : ops_) ptrs.push_back(&op);
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = 0;
      errors_ = 0;
      submitted_at_ = Clock::now();
    }
    runner.Submit(ptrs);
  }

  void OnIoComplete(SegmentIo& io) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!io.status.ok()) ++errors_;
    if (++done_ == ops_.size()) {
      finished_at_ = Clock::now();
      if (on_finish_) on_finish_();  // under mu_: done before any waiter wakes
    }
    cv_.notify_all();
  }

  size_t done() {
    std::lock_guard<std::mutex> lock(mu_);
    return done_;
  }
  void AwaitDone(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return done_ >= n; });
  }
  bool AwaitAllFor(milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return done_ == ops_.size(); });
  }
  // Seconds from Submit to the last completion. REQUIRES: all done.
  double latency_seconds() {
    std::lock_guard<std::mutex> lock(mu_);
    return std::chrono::duration<double>(finished_at_ - submitted_at_).count();
  }
  size_t errors() {
    std::lock_guard<std::mutex> lock(mu_);
    return errors_;
  }
  // Runs on the worker, under this group's lock, once the whole group
  // completed. Set before Submit.
  void set_on_finish(std::function<void()> f) { on_finish_ = std::move(f); }

 private:
  std::vector<SegmentIo> ops_;
  std::mutex mu_;
  std::condition_variable cv_;
  size_t done_ = 0;
  size_t errors_ = 0;
  Clock::time_point submitted_at_{};
  Clock::time_point finished_at_{};
  std::function<void()> on_finish_;
};

// A write queued while reads keep arriving completes soon after
// max_write_delay, not when the reads stop.
TEST(DeviceRunnerTest, WriteIsNotStarvedBySustainedReads) {
  constexpr auto kMaxDelay = milliseconds(10);
  constexpr auto kFeedFor = milliseconds(1500);
  constexpr size_t kGroups = 4, kReadsPerGroup = 16;
  Gate gate;
  std::vector<std::unique_ptr<OpGroup>> reads;
  for (size_t g = 0; g < kGroups; ++g) {
    reads.push_back(std::make_unique<OpGroup>(IoKind::kRead, kReadsPerGroup));
  }
  OpGroup write(IoKind::kWrite, 1);
  // Declared after the groups: destroyed (and drained) before them.
  auto runner = StartSleepRunner(microseconds(250), &gate, /*queue_depth=*/8, {kMaxDelay});
  ASSERT_NE(runner, nullptr);

  // Feeder: resubmits each read group as soon as it completes, so reads are
  // always queued, until the write is done or kFeedFor passed.
  std::mutex mu;
  std::condition_variable cv;
  std::vector<size_t> finished;  // groups to resubmit; guarded by mu
  bool write_done = false;       // guarded by mu
  for (size_t g = 0; g < kGroups; ++g) {
    reads[g]->set_on_finish([&, g] {
      std::lock_guard<std::mutex> lock(mu);
      finished.push_back(g);
      cv.notify_all();
    });
  }
  write.set_on_finish([&] {
    std::lock_guard<std::mutex> lock(mu);
    write_done = true;
    cv.notify_all();
  });
  for (auto& g : reads) g->Submit(*runner);
  write.Submit(*runner);

  size_t resubmitted = 0;
  const Clock::time_point deadline = Clock::now() + kFeedFor;
  {
    std::unique_lock<std::mutex> lock(mu);
    while (!write_done && Clock::now() < deadline) {
      cv.wait_until(lock, deadline, [&] { return write_done || !finished.empty(); });
      std::vector<size_t> again;
      again.swap(finished);
      lock.unlock();
      for (size_t g : again) reads[g]->Submit(*runner);
      resubmitted += again.size();
      lock.lock();
    }
  }
  ASSERT_TRUE(write.AwaitAllFor(milliseconds(5000)));
  EXPECT_EQ(write.errors(), 0u);
  // One read batch is at most 64 ops x 250 us = 16 ms; the old scheduler
  // served the write only after the feeder stopped (1.5 s).
  EXPECT_LT(write.latency_seconds(), 0.3) << "read groups resubmitted: " << resubmitted;
  for (auto& g : reads) ASSERT_TRUE(g->AwaitAllFor(milliseconds(5000)));
}

// A read submitted behind a backlog of writes waits for the write batch in
// flight (queue_depth ops), not for a batch of hundreds of writes.
TEST(DeviceRunnerTest, ReadBehindWriteBacklogWaitsOneSmallBatch) {
  constexpr uint32_t kDepth = 8;
  constexpr size_t kWrites = 512;
  Gate gate;
  gate.open = false;
  OpGroup writes(IoKind::kWrite, kWrites);
  OpGroup read(IoKind::kRead, 1);
  size_t writes_done_at_read = 0;
  read.set_on_finish([&] { writes_done_at_read = writes.done(); });
  auto runner = StartSleepRunner(microseconds(1000), &gate, kDepth);
  ASSERT_NE(runner, nullptr);

  writes.Submit(*runner);
  gate.AwaitWaiting(1);  // the worker holds its first write batch
  read.Submit(*runner);
  const Clock::time_point opened = Clock::now();
  gate.Open();
  ASSERT_TRUE(read.AwaitAllFor(milliseconds(5000)));
  const double read_wait = SecondsSince(opened);
  ASSERT_TRUE(writes.AwaitAllFor(milliseconds(10000)));
  const double writes_wait = SecondsSince(opened);

  EXPECT_EQ(read.errors(), 0u);
  EXPECT_EQ(writes.errors(), 0u);
  // Read and write callbacks run on the one worker, in order.
  EXPECT_LE(writes_done_at_read, kDepth) << "the old scheduler took 256 writes per batch";
  // 8 writes x 1 ms (old: 256 ms); all writes take >= 512 ms.
  EXPECT_LT(read_wait, 0.1);
  EXPECT_GT(writes_wait, 5 * read_wait);
}

// Reads are still preferred: with no write overdue, a read queued behind
// writes is served by the next batch.
TEST(DeviceRunnerTest, ReadGoesBeforeQueuedWritesThatAreNotOverdue) {
  constexpr uint32_t kDepth = 4;
  Gate gate;
  gate.open = false;
  OpGroup writes(IoKind::kWrite, 3 * kDepth);
  OpGroup read(IoKind::kRead, 1);
  size_t writes_done_at_read = 0;
  read.set_on_finish([&] { writes_done_at_read = writes.done(); });
  auto runner = StartSleepRunner(microseconds(0), &gate, kDepth, {milliseconds(60000)});
  ASSERT_NE(runner, nullptr);

  writes.Submit(*runner);
  gate.AwaitWaiting(1);
  read.Submit(*runner);
  gate.Open();
  ASSERT_TRUE(read.AwaitAllFor(milliseconds(5000)));
  ASSERT_TRUE(writes.AwaitAllFor(milliseconds(5000)));
  EXPECT_EQ(writes_done_at_read, kDepth);
}

// Submits `held`, waits until the worker holds its first op at the closed
// gate, queues `queued` behind it, opens the gate and waits for both.
void QueueBehindHeldBatch(DeviceRunner& runner, Gate& gate, OpGroup& held, OpGroup& queued) {
  gate.Close();
  held.Submit(runner);
  gate.AwaitWaiting(1);
  queued.Submit(runner);
  gate.Open();
  ASSERT_TRUE(held.AwaitAllFor(milliseconds(5000)));
  ASSERT_TRUE(queued.AwaitAllFor(milliseconds(5000)));
}

// Reads queued while a read batch runs join it (IoStreamSink::Extend)
// instead of waiting for the next batch, so a streaming device's queue does
// not drain between batches; a write batch is never extended.
TEST(DeviceRunnerTest, ReadsQueuedDuringAReadBatchJoinIt) {
  constexpr uint32_t kDepth = 4;
  Gate gate;
  OpGroup first(IoKind::kRead, 2), later(IoKind::kRead, 3 * kDepth);
  OpGroup writes(IoKind::kWrite, 2), write_later(IoKind::kWrite, 1);
  auto runner = StartSleepRunner(microseconds(0), &gate, kDepth, {milliseconds(60000)});
  ASSERT_NE(runner, nullptr);

  QueueBehindHeldBatch(*runner, gate, first, later);
  EXPECT_EQ(first.errors() + later.errors(), 0u);
  EXPECT_EQ(gate.streams.load(), 1u) << "the later reads needed batches of their own";

  QueueBehindHeldBatch(*runner, gate, writes, write_later);
  EXPECT_EQ(gate.streams.load(), 3u) << "a write batch took writes queued after it started";
}

// Under sustained reads a batch still ends after ExtendLimit() extra reads,
// so that the live bandwidth (sampled at batch ends) keeps up.
TEST(DeviceRunnerTest, AnExtendedReadBatchStillEnds) {
  constexpr uint32_t kDepth = 4;
  Gate gate;
  OpGroup first(IoKind::kRead, 1);
  auto runner = StartSleepRunner(microseconds(0), &gate, kDepth, {milliseconds(60000)});
  ASSERT_NE(runner, nullptr);
  OpGroup later(IoKind::kRead, runner->ExtendLimit() + kDepth);

  QueueBehindHeldBatch(*runner, gate, first, later);
  EXPECT_EQ(gate.streams.load(), 2u) << "one batch took more than ExtendLimit() extra reads";
}

// queued_read_bytes counts reads from Submit until each completes; writes
// never count.
TEST(DeviceRunnerTest, QueuedReadBytesFollowsSubmitAndCompletion) {
  Gate gate;
  gate.open = false;
  OpGroup big(IoKind::kRead, 3, kSlotBytes);
  OpGroup small(IoKind::kRead, 2, 1000);
  OpGroup writes(IoKind::kWrite, 4);
  auto runner = StartSleepRunner(microseconds(0), &gate, 8);
  ASSERT_NE(runner, nullptr);
  EXPECT_EQ(runner->queued_read_bytes(), 0u);

  big.Submit(*runner);
  EXPECT_EQ(runner->queued_read_bytes(), 3u * kSlotBytes);
  gate.AwaitWaiting(1);  // the worker holds the three big reads
  writes.Submit(*runner);
  small.Submit(*runner);
  EXPECT_EQ(runner->queued_read_bytes(), 3u * kSlotBytes + 2000u) << "in flight and queued";

  gate.Release(1);  // the first big read completes
  big.AwaitDone(1);
  EXPECT_EQ(runner->queued_read_bytes(), 2u * kSlotBytes + 2000u);

  gate.Open();
  ASSERT_TRUE(big.AwaitAllFor(milliseconds(5000)));
  ASSERT_TRUE(small.AwaitAllFor(milliseconds(5000)));
  ASSERT_TRUE(writes.AwaitAllFor(milliseconds(5000)));
  EXPECT_EQ(runner->queued_read_bytes(), 0u);
  EXPECT_EQ(big.errors() + small.errors() + writes.errors(), 0u);
}

// One large request is shared among the idle workers: with the gate shut,
// both workers of a two-thread device hold an op of the same submission.
// (Taking whole batches, the first worker to wake would hold all of them.)
TEST(DeviceRunnerTest, OneLargeReadIsSharedByEveryIdleWorker) {
  Gate gate;
  gate.open = false;
  auto runner = StartSleepRunner(microseconds(0), &gate, /*queue_depth=*/32, {},
                                 /*io_threads=*/2);
  ASSERT_NE(runner, nullptr);
  OpGroup reads(IoKind::kRead, 64);
  reads.Submit(*runner);
  EXPECT_TRUE(gate.AwaitWaitingFor(2, milliseconds(5000)))
      << "only one worker took ops of a 64-op request";
  gate.Open();
  ASSERT_TRUE(reads.AwaitAllFor(milliseconds(10000)));
  EXPECT_EQ(reads.errors(), 0u);
}

// A throttled DRAM device holding kSegments segments of kSegmentBytes,
// written once.
class ThrottledRunner {
 public:
  static constexpr uint32_t kSegmentBytes = 256 << 10;
  static constexpr uint32_t kSegments = 16;  // 4 MiB: one sample per full read
  // Low enough that checksums and copies keep up under TSan on a busy machine.
  static constexpr double kGibps = 0.125;

  explicit ThrottledRunner(uint32_t io_threads) : data_(size_t{kSegments} * kSegmentBytes) {
    DeviceOptions o = DramOptions("dram", 2 * uint64_t{kSegments} * kSegmentBytes);
    o.throttle_gibps = kGibps;
    o.io_threads = io_threads;
    auto d = OpenDevice(o, kSegmentBytes, ChunkKey{});
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    if (!d.ok()) return;
    auto r = DeviceRunner::Start(std::move(d).value(), 0);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return;
    runner_ = std::move(r).value();
    for (size_t i = 0; i < data_.size(); i += 64) data_.data()[i] = std::byte(i >> 6);
    ops_.resize(kSegments);
    for (uint32_t i = 0; i < kSegments; ++i) {
      ops_[i] = SegmentIo{IoKind::kWrite, i, kSegmentBytes, data_.data() + size_t{i} * kSegmentBytes};
    }
    IoWaiter waiter;
    Status s = waiter.Run(*runner_, ops_);  // fills each op's checksum
    EXPECT_TRUE(s.ok()) << s.ToString();
    for (SegmentIo& op : ops_) op.kind = IoKind::kRead;
  }

  DeviceRunner* runner() { return runner_.get(); }

  // Reads segments [first, first + n) back; checksums verify.
  void Read(uint32_t first, uint32_t n) {
    IoWaiter waiter;
    Status s = waiter.Run(*runner_, std::span<SegmentIo>(ops_).subspan(first, n));
    EXPECT_TRUE(s.ok()) << s.ToString();
  }

  // Waits until no batch is in flight, so that the last batch's sample is
  // in (the owner hears of an op before its batch ends). busy_seconds()
  // stays the same over an interval only when no batch ran in it.
  void AwaitIdle() {
    for (int i = 0; i < 1000; ++i) {
      const double before = runner_->busy_seconds();
      std::this_thread::sleep_for(milliseconds(2));
      if (runner_->busy_seconds() == before) return;
    }
    ADD_FAILURE() << "runner never went idle";
  }

 private:
  AlignedBuffer data_;
  std::vector<SegmentIo> ops_;
  std::unique_ptr<DeviceRunner> runner_;  // last: drained before the ops go
};

// live_read_gibps is 0 before enough reads, then close to the throttle.
TEST(DeviceRunnerTest, LiveReadGibpsTracksThrottledBandwidth) {
  ThrottledRunner t(/*io_threads=*/1);
  ASSERT_NE(t.runner(), nullptr);
  DeviceRunner& r = *t.runner();
  EXPECT_EQ(r.live_read_gibps(), 0) << "writes do not count";
  EXPECT_EQ(r.queued_read_bytes(), 0u);

  // Each full read is one batch of 4 MiB: one sample.
  for (uint32_t i = 1; i < DeviceRunner::kLiveMinSamples; ++i) {
    t.Read(0, ThrottledRunner::kSegments);
    t.AwaitIdle();
    EXPECT_EQ(r.live_read_gibps(), 0) << "after " << i << " samples";
  }
  for (int i = 0; i < 4; ++i) t.Read(0, ThrottledRunner::kSegments);
  t.AwaitIdle();
  const double g = r.live_read_gibps();
  EXPECT_GT(g, 0.5 * ThrottledRunner::kGibps);
  EXPECT_LT(g, 1.5 * ThrottledRunner::kGibps);
  EXPECT_EQ(r.queued_read_bytes(), 0u);

  // Batches under kLiveSampleBytes alone take no sample (and do not reset).
  t.Read(0, 1);
  t.AwaitIdle();
  EXPECT_EQ(r.live_read_gibps(), g);
}

// With two workers reading at once, live_read_gibps is the device's
// throughput (the throttle is shared), not one worker's batch rate.
TEST(DeviceRunnerTest, LiveReadGibpsIsDeviceWideWithSeveralWorkers) {
  ThrottledRunner t(/*io_threads=*/2);
  ASSERT_NE(t.runner(), nullptr);
  constexpr uint32_t kHalf = ThrottledRunner::kSegments / 2;
  auto reader = [&t](uint32_t first) {
    for (int i = 0; i < 6; ++i) t.Read(first, kHalf);
  };
  std::thread a(reader, 0), b(reader, kHalf);
  a.join();
  b.join();
  t.AwaitIdle();
  const double g = t.runner()->live_read_gibps();
  EXPECT_GT(g, 0.5 * ThrottledRunner::kGibps);
  EXPECT_LT(g, 1.5 * ThrottledRunner::kGibps);
}

}  // namespace
}  // namespace kvpool::testing
