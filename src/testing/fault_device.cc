#include "testing/fault_device.h"

#include <thread>

namespace kvpool::testing {
namespace {

class FaultQueue final : public IoQueue {
 public:
  FaultQueue(std::unique_ptr<IoQueue> inner, std::shared_ptr<FaultPlan> plan)
      : inner_(std::move(inner)), plan_(std::move(plan)) {}

  void Execute(std::span<SegmentIo* const> ops) override {
    std::this_thread::sleep_for(TakeDelay(ops));
    inner_->Execute(ops);
    std::lock_guard<std::mutex> lock(plan_->mu);
    for (SegmentIo* op : ops) Inject(*op);
  }

 private:
  // FaultPlan::read_delay for each of `ops`' reads in the slowed window.
  std::chrono::microseconds TakeDelay(std::span<SegmentIo* const> ops) {
    std::lock_guard<std::mutex> lock(plan_->mu);
    std::chrono::microseconds delay{0};
    for (const SegmentIo* op : ops) {
      if (op->kind != IoKind::kRead) continue;
      if (plan_->slow_reads_after > 0) {
        --plan_->slow_reads_after;
      } else if (plan_->slow_read_count > 0) {
        --plan_->slow_read_count;
        delay += plan_->read_delay;
      }
    }
    return delay;
  }

  void Inject(SegmentIo& op) {
    if (op.kind == IoKind::kWrite) {
      if (plan_->fail_all_writes) Fail(op, "injected write error");
      return;
    }
    if (plan_->fail_all_reads || plan_->fail_read_slots.count(op.slot)) {
      Fail(op, "injected read error");
      return;
    }
    bool flip = plan_->flip_read_slots.count(op.slot) > 0;
    if (plan_->flip_nth_read > 0 && --plan_->flip_nth_read == 0) flip = true;
    if (flip && op.length > 0) {
      op.buffer[op.length / 2] ^= std::byte{0x10};
      op.delivered_checksum_known = false;  // the device delivered other bytes
      ++plan_->injected;
    }
  }

  void Fail(SegmentIo& op, const char* what) {
    op.status = Status::IOError(what);
    ++plan_->injected;
  }

  std::unique_ptr<IoQueue> inner_;
  std::shared_ptr<FaultPlan> plan_;
};

class FaultDevice final : public Device {
 public:
  FaultDevice(std::unique_ptr<Device> inner, std::shared_ptr<FaultPlan> plan)
      : Device(inner->options(), inner->geometry()),
        inner_(std::move(inner)),
        plan_(std::move(plan)) {}

  Result<std::unique_ptr<IoQueue>> NewIoQueue() override {
    auto q = inner_->NewIoQueue();
    if (!q.ok()) return q.status();
    return std::unique_ptr<IoQueue>(new FaultQueue(std::move(q).value(), plan_));
  }
  bool persistent() const override { return inner_->persistent(); }
  std::vector<RecoveredSegment> TakeRecovered() override { return inner_->TakeRecovered(); }
  void ReleaseSlot(uint32_t slot) override { inner_->ReleaseSlot(slot); }
  Status Checkpoint() override { return inner_->Checkpoint(); }
  void DropCaches() override { inner_->DropCaches(); }
  std::string Describe() const override { return inner_->Describe() + " fault-injecting"; }

 private:
  std::unique_ptr<Device> inner_;
  std::shared_ptr<FaultPlan> plan_;
};

}  // namespace

std::unique_ptr<Device> NewFaultDevice(std::unique_ptr<Device> inner,
                                       std::shared_ptr<FaultPlan> plan) {
  return std::make_unique<FaultDevice>(std::move(inner), std::move(plan));
}

}  // namespace kvpool::testing
