#include "tier/extent/extent_device.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <optional>
#include <string>

#include "format/layout.h"
#include "tier/extent/checkpointer.h"
#include "tier/extent/extent_file.h"
#include "tier/extent/extent_queue.h"
#include "tier/extent/extent_recovery.h"
#include "tier/extent/extent_superblock.h"
#include "tier/extent/raw_queue.h"
#include "tier/extent/slot_table.h"
#include "util/log.h"

namespace kvpool {
namespace {

// Slot indices are 32-bit in SegmentIo; beyond this the table (72 B/slot in
// memory, 64 B/slot per checkpoint copy) is no longer reasonable either.
constexpr uint64_t kMaxSlots = 1ull << 28;
// Bytes of bounce buffers the recovery scan may use.
constexpr uint64_t kRecoveryBufferBytes = 64ull << 20;
// Most bytes of bounce buffers one I/O queue (one worker thread) may pin.
constexpr uint64_t kQueueBufferBytes = 512ull << 20;

class ExtentDevice final : public Device {
 public:
  ExtentDevice(DeviceOptions options, DeviceGeometry geometry, std::unique_ptr<BlockTarget> target,
               const format::Superblock& sb)
      : Device(std::move(options), geometry),
        target_(std::move(target)),
        table_(geometry.slot_count) {
    ctx_.what = "device '" + options_.name + "'";
    ctx_.layout = sb.layout;
    ctx_.pool_id = sb.pool_id;
    ctx_.device_id = sb.device_id;
    ctx_.table = &table_;
    ctx_.next_write_id = &next_write_id_;
    ctx_.zero_copy = options_.zero_copy;
    ctx_.direct_alignment = target_->direct_alignment();
    ctx_.target = target_.get();
    ctx_.direct_refused = &direct_refused_;
  }

  ~ExtentDevice() override {
    if (!checkpointer_) return;
    checkpointer_->Stop();
    if (table_.dirty()) (void)checkpointer_->Write(/*clean=*/true);  // logged on failure
  }

  // Recovers the slot table and starts the checkpoint thread.
  Status Recover(const ExtentTuning& tuning) {
    uint32_t depth =
        uint32_t(std::clamp<uint64_t>(kRecoveryBufferBytes / ctx_.layout.slot_bytes, 4, 256));
    KVP_ASSIGN_OR_RETURN(std::unique_ptr<RawQueue> queue, NewRaw(depth));
    KVP_ASSIGN_OR_RETURN(std::optional<LoadedCheckpoint> ckpt,
                         LoadCheckpoint(*target_, ctx_.layout, ctx_.device_id, ctx_.what));
    KVP_ASSIGN_OR_RETURN(RecoveryOutcome r, RecoverSlots(*queue, ctx_, ckpt ? &*ckpt : nullptr));
    next_write_id_.store(r.next_write_id);
    if (!r.table_changed) table_.TakeDirty();
    log::Info(ctx_.what + ": recovered " + std::to_string(r.kept.size()) + " segments (" +
              std::to_string(r.trusted) + " by checkpoint generation " +
              std::to_string(ckpt ? ckpt->header.generation : 0) + ", " +
              std::to_string(r.verified) + " verified), discarded " + std::to_string(r.discarded));
    recovered_ = std::move(r.kept);
    checkpointer_ = std::make_unique<Checkpointer>(target_.get(), ctx_.layout, ctx_.device_id,
                                                   &table_, &next_write_id_,
                                                   ckpt ? ckpt->header.generation : 0, ctx_.what);
    checkpointer_->StartBackground(tuning.checkpoint_interval);
    return Status::OK();
  }

  Result<std::unique_ptr<IoQueue>> NewIoQueue() override {
    // queue_depth bounce buffers of one slot each, within kQueueBufferBytes;
    // larger batches run in waves (ExtentQueue::Execute).
    uint32_t depth = uint32_t(std::clamp<uint64_t>(kQueueBufferBytes / ctx_.layout.slot_bytes, 1,
                                                   std::max<uint32_t>(1, options_.queue_depth)));
    KVP_ASSIGN_OR_RETURN(std::unique_ptr<RawQueue> raw, NewRaw(depth));
    return std::unique_ptr<IoQueue>(new ExtentQueue(std::move(raw), &ctx_));
  }

  bool persistent() const override { return true; }
  std::vector<RecoveredSegment> TakeRecovered() override { return std::move(recovered_); }

  void ReleaseSlot(uint32_t slot) override {
    if (slot < table_.size()) table_.Release(slot);
  }

  Status Checkpoint() override {
    if (!table_.dirty()) return Status::OK();
    return checkpointer_->Write(/*clean=*/true);
  }

  size_t direct_alignment() const override {
    return ctx_.direct_allowed() ? ctx_.direct_alignment : 0;
  }

  std::string Describe() const override { return Device::Describe() + " " + target_->Describe(); }

 private:
  Result<std::unique_ptr<RawQueue>> NewRaw(uint32_t depth) {
    return target_->NewEngine(depth, size_t(ctx_.layout.slot_bytes));
  }

  std::unique_ptr<BlockTarget> target_;
  SlotTable table_;
  std::atomic<uint64_t> next_write_id_{1};
  std::atomic<bool> direct_refused_{false};
  ExtentContext ctx_;
  std::unique_ptr<Checkpointer> checkpointer_;
  std::vector<RecoveredSegment> recovered_;
};

Status CheckFileOptions(const DeviceOptions& o) {
  const std::string what = "device '" + o.name + "'";
  if (o.path.empty()) {
    return Status::InvalidArgument(what + ": path (a file or block device) is required");
  }
  if (o.engine != "uring" && o.engine != "psync") {
    return Status::InvalidArgument(what + ": engine must be \"uring\" or \"psync\", got \"" +
                                   o.engine + "\"");
  }
  return Status::OK();
}

Status CheckLayout(const DeviceOptions& o, const format::Layout& layout, uint32_t payload) {
  if (payload != 0 && layout.slot_count != 0) return Status::OK();
  return Status::InvalidArgument("device '" + o.name + "': capacity_bytes " +
                                 std::to_string(o.capacity_bytes) + " holds no segment of " +
                                 std::to_string(payload) + " bytes");
}

}  // namespace

Result<ExtentPlan> PlanExtent(const DeviceOptions& options, uint32_t segment_payload_bytes) {
  const std::string what = "device '" + options.name + "'";
  ExtentPlan plan;
  plan.layout =
      format::ComputeLayout(options.capacity_bytes, std::max<uint32_t>(1, segment_payload_bytes));
  KVP_RETURN_IF_ERROR(CheckLayout(options, plan.layout, segment_payload_bytes));
  KVP_ASSIGN_OR_RETURN(plan.geometry, PayloadSlotGeometry(options, segment_payload_bytes));
  if (plan.geometry.slot_count > kMaxSlots) {
    return Status::InvalidArgument(what + ": capacity_bytes " +
                                   std::to_string(options.capacity_bytes) + " makes " +
                                   std::to_string(plan.geometry.slot_count) + " slots; at most " +
                                   std::to_string(kMaxSlots) + " are supported");
  }
  return plan;
}

Result<std::unique_ptr<Device>> OpenExtentOnTarget(const DeviceOptions& options,
                                                   const ExtentPlan& plan,
                                                   std::unique_ptr<BlockTarget> target,
                                                   const ChunkKey& pool_id,
                                                   const ExtentTuning& tuning) {
  KVP_ASSIGN_OR_RETURN(format::Superblock sb,
                       AttachSuperblock(*target, plan.layout, options, pool_id));
  std::unique_ptr<ExtentDevice> device(
      new ExtentDevice(options, plan.geometry, std::move(target), sb));
  KVP_RETURN_IF_ERROR(device->Recover(tuning));
  return std::unique_ptr<Device>(std::move(device));
}

Result<std::unique_ptr<Device>> OpenExtentDevice(const DeviceOptions& options,
                                                 uint32_t segment_payload_bytes,
                                                 const ChunkKey& pool_id) {
  return OpenExtentDevice(options, segment_payload_bytes, pool_id, ExtentTuning{});
}

Result<std::unique_ptr<Device>> OpenExtentDevice(const DeviceOptions& options,
                                                 uint32_t segment_payload_bytes,
                                                 const ChunkKey& pool_id,
                                                 const ExtentTuning& tuning) {
  const std::string what = "device '" + options.name + "'";
  KVP_RETURN_IF_ERROR(CheckFileOptions(options));
  // Nothing is created or written before these checks pass.
  const format::Layout layout =
      format::ComputeLayout(options.capacity_bytes, std::max<uint32_t>(1, segment_payload_bytes));
  KVP_RETURN_IF_ERROR(CheckLayout(options, layout, segment_payload_bytes));
  if (options.engine == "uring") KVP_RETURN_IF_ERROR(CheckUringAvailable(what));
  KVP_RETURN_IF_ERROR(ExtentFile::CheckRoom(options, layout.total_bytes));
  KVP_ASSIGN_OR_RETURN(ExtentPlan plan, PlanExtent(options, segment_payload_bytes));
  KVP_ASSIGN_OR_RETURN(std::unique_ptr<ExtentFile> file,
                       ExtentFile::Open(options, plan.layout.total_bytes));
  const bool created = file->created();
  auto device = OpenExtentOnTarget(options, plan, std::move(file), pool_id, tuning);
  if (!device.ok() && created) ::unlink(options.path.c_str());  // leave no file behind
  return device;
}

}  // namespace kvpool
