#include "tier/extent/extent_queue.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "format/constants.h"
#include "format/slot_header.h"
#include "util/aligned_buffer.h"
#include "util/checksum.h"
#include "util/errno_status.h"
#include "util/log.h"

namespace kvpool {
namespace {

using format::kBlockBytes;

std::string SlotName(const ExtentContext& c, uint32_t slot) {
  return c.what + " slot " + std::to_string(slot);
}

// Payload bytes of `op` that can move without a bounce buffer: its whole
// blocks, when the caller's memory has the alignment O_DIRECT asks of it on
// this device (ExtentContext::direct_alignment).
uint32_t DirectBytes(const SegmentIo& op, size_t alignment) {
  if (!IsAligned(op.buffer, alignment)) return 0;
  return op.length / kBlockBytes * kBlockBytes;
}

}  // namespace

ExtentQueue::ExtentQueue(std::unique_ptr<RawQueue> raw, const ExtentContext* context)
    : raw_(std::move(raw)), ctx_(context) {
  ios_.reserve(raw_->depth());
  ops_.reserve(raw_->depth());
  write_ids_.reserve(raw_->depth());
}

void ExtentQueue::Execute(std::span<SegmentIo* const> ops) {
  const size_t depth = raw_->depth();
  for (size_t i = 0; i < ops.size(); i += depth) {
    RunWave(ops.subspan(i, std::min(depth, ops.size() - i)));
  }
}

// Adapts a batch of segment ops to the engine's pull/complete stream.
class ExtentQueue::Stream final : public RawStream {
 public:
  Stream(ExtentQueue* queue, std::span<SegmentIo* const> ops, IoStreamSink& sink)
      : queue_(queue),
        ops_(ops),
        sink_(sink),
        by_buffer_(queue->raw_->depth(), nullptr),
        write_id_(queue->raw_->depth(), 0) {
    completed_.reserve(queue->raw_->depth());
  }

  bool Next(uint32_t buffer, RawIo* io) override {
    while (true) {
      if (next_ == ops_.size()) {  // every op given so far is issued
        more_.clear();
        if (!sink_.Extend(&more_)) return false;
        ops_ = more_;
        next_ = 0;
      }
      SegmentIo& op = *ops_[next_++];
      sink_.BeforeIssue(op);
      op.status = queue_->Prepare(op, buffer, io, &write_id_[buffer]);
      if (!op.status.ok()) {
        sink_.Done(op);
        continue;
      }
      by_buffer_[buffer] = &op;
      return true;
    }
  }

  // Header checks and bounce copies need the arena buffer: done here. The
  // sink's work (payload verification, the owner's callback) waits for Drain.
  void Complete(RawIo& io) override {
    SegmentIo& op = *by_buffer_[io.buffer];
    op.status = op.kind == IoKind::kRead ? queue_->FinishRead(op, io)
                                         : queue_->FinishWrite(op, io, write_id_[io.buffer]);
    completed_.push_back(&op);
  }

  void Drain() override {
    for (SegmentIo* op : completed_) sink_.Done(*op);  // may end op's lifetime
    completed_.clear();
  }

 private:
  ExtentQueue* queue_;
  std::span<SegmentIo* const> ops_;
  IoStreamSink& sink_;
  size_t next_ = 0;
  std::vector<SegmentIo*> by_buffer_;
  std::vector<uint64_t> write_id_;
  std::vector<SegmentIo*> completed_;  // completed, not yet handed to the sink
  std::vector<SegmentIo*> more_;       // ops the sink added (IoStreamSink::Extend)
};

void ExtentQueue::ExecuteStreaming(std::span<SegmentIo* const> ops, IoStreamSink& sink) {
  Stream stream(this, ops, sink);
  raw_->RunStream(stream);
}

void ExtentQueue::RunWave(std::span<SegmentIo* const> ops) {
  ios_.clear();
  ops_.clear();
  write_ids_.clear();
  for (SegmentIo* op : ops) {
    RawIo io;
    uint64_t write_id = 0;
    op->status = Prepare(*op, static_cast<uint32_t>(ios_.size()), &io, &write_id);
    if (!op->status.ok()) continue;
    ios_.push_back(io);
    ops_.push_back(op);
    write_ids_.push_back(write_id);
  }
  if (ios_.empty()) return;
  raw_->Run(ios_);
  for (size_t i = 0; i < ios_.size(); ++i) {
    SegmentIo& op = *ops_[i];
    op.status = op.kind == IoKind::kRead ? FinishRead(op, ios_[i])
                                         : FinishWrite(op, ios_[i], write_ids_[i]);
  }
}

Status ExtentQueue::Prepare(SegmentIo& op, uint32_t buffer, RawIo* io, uint64_t* write_id) {
  const format::Layout& l = ctx_->layout;
  if (op.slot >= l.slot_count || op.length == 0 || op.length > l.slot_payload_bytes) {
    return Status::InvalidArgument(SlotName(*ctx_, op.slot) + ": slot or length " +
                                   std::to_string(op.length) + " out of range");
  }
  io->kind = op.kind;
  io->offset = l.SlotOffset(op.slot);
  io->length = static_cast<uint32_t>(format::Layout::SlotIoBytes(op.length));
  io->buffer = buffer;
  io->direct_bytes = ctx_->direct_allowed() && raw_->supports_direct()
                         ? DirectBytes(op, ctx_->direct_alignment)
                         : 0;
  if (io->direct_bytes > 0 && !raw_->DirectOk(op.buffer, io->direct_bytes)) io->direct_bytes = 0;
  io->direct = io->direct_bytes > 0 ? op.buffer : nullptr;
  op.bounced = io->direct_bytes == 0;
  if (op.kind == IoKind::kRead) return Status::OK();
  std::byte* b = raw_->arena().buffer(buffer);
  *write_id = ctx_->next_write_id->fetch_add(1, std::memory_order_relaxed);
  format::SlotHeader h;
  h.chunk = op.tag.chunk;
  h.parent = op.tag.parent;
  h.layer = op.tag.layer;
  h.length = op.length;
  h.payload_checksum = op.checksum;
  h.sequence = op.tag.sequence;
  h.write_id = *write_id;
  h.pool_id = ctx_->pool_id;
  h.device_id = ctx_->device_id;
  h.slot = op.slot;
  format::EncodeSlotHeader(h, b);
  // What does not go direct follows the header in the arena: the whole
  // payload, or only its last partial block (zero-padded either way).
  const uint32_t staged = op.length - io->direct_bytes;
  const uint32_t staged_io = io->length - kBlockBytes - io->direct_bytes;
  std::memcpy(b + kBlockBytes, op.buffer + io->direct_bytes, staged);
  std::memset(b + kBlockBytes + staged, 0, staged_io - staged);
  return Status::OK();
}

Status ExtentQueue::TransferStatus(const SegmentIo& op, const RawIo& io) const {
  const char* verb = op.kind == IoKind::kRead ? "read" : "write";
  if (io.result < 0) return ErrnoStatus(int(-io.result), SlotName(*ctx_, op.slot) + ": " + verb);
  if (uint64_t(io.result) < io.length) {
    return Status::IOError(SlotName(*ctx_, op.slot) + ": short " + verb + " (" +
                           std::to_string(io.result) + " of " + std::to_string(io.length) +
                           " bytes)");
  }
  return Status::OK();
}

Status ExtentQueue::Transferred(SegmentIo& op, RawIo& io) {
  const bool refused = io.result == -EINVAL && io.direct_bytes > 0;
  const bool can_redo = ctx_->target != nullptr && ctx_->direct_refused != nullptr;
  return refused && can_redo ? RedoBounced(op, io) : TransferStatus(op, io);
}

// Turns direct transfers off for the device, then moves the whole slot
// through the arena buffer, whose header block is still in place (a write's
// payload is staged behind it first). Blocks this queue's thread for one
// synchronous transfer; it happens at most queue-depth times per device.
Status ExtentQueue::RedoBounced(SegmentIo& op, RawIo& io) {
  if (!ctx_->direct_refused->exchange(true)) {
    log::Warn(ctx_->what + ": the kernel refused a direct transfer (EINVAL) of memory at the " +
              std::to_string(ctx_->direct_alignment) +
              "-byte alignment it reports for O_DIRECT; every transfer now goes through the "
              "bounce buffers");
  }
  std::byte* b = raw_->arena().buffer(io.buffer);
  io.direct = nullptr;
  io.direct_bytes = 0;
  op.bounced = true;
  const std::string what = SlotName(*ctx_, op.slot);
  if (op.kind == IoKind::kRead) return ctx_->target->ReadAt(b, io.length, io.offset, what);
  std::memcpy(b + kBlockBytes, op.buffer, op.length);
  std::memset(b + kBlockBytes + op.length, 0, io.length - kBlockBytes - op.length);
  return ctx_->target->WriteAt(b, io.length, io.offset, what);
}

Status ExtentQueue::FinishRead(SegmentIo& op, RawIo& io) {
  KVP_RETURN_IF_ERROR(Transferred(op, io));
  const std::byte* b = raw_->arena().buffer(io.buffer);
  format::SlotHeader h;
  Status s = format::DecodeSlotHeader(b, &h);
  if (!s.ok()) return Status::Corruption(SlotName(*ctx_, op.slot) + ": " + s.message());
  if (h.pool_id != ctx_->pool_id || h.device_id != ctx_->device_id || h.slot != op.slot) {
    return Status::Corruption(SlotName(*ctx_, op.slot) +
                              ": header belongs to another pool, device or slot");
  }
  if (h.chunk != op.tag.chunk || h.layer != op.tag.layer || h.length != op.length) {
    return Status::Corruption(SlotName(*ctx_, op.slot) + ": holds chunk " + h.chunk.ToHex() +
                              " layer " + std::to_string(h.layer) + ", expected chunk " +
                              op.tag.chunk.ToHex() + " layer " + std::to_string(op.tag.layer));
  }
  if (io.direct_bytes == 0) {  // the whole payload is copied: hash it on the way
    op.delivered_checksum = CopyWithChecksum(op.buffer, b + kBlockBytes, op.length);
    op.delivered_checksum_known = true;
  } else {
    std::memcpy(op.buffer + io.direct_bytes, b + kBlockBytes, op.length - io.direct_bytes);
  }
  return Status::OK();
}

Status ExtentQueue::FinishWrite(SegmentIo& op, RawIo& io, uint64_t write_id) {
  Status s = Transferred(op, io);
  format::SlotEntry e;
  e.write_id = write_id;  // free (length 0) unless the write landed
  if (s.ok() && !op.tag.chunk.IsZero()) {
    e.chunk = op.tag.chunk;
    e.parent = op.tag.parent;
    e.sequence = op.tag.sequence;
    e.checksum = op.checksum;
    e.layer = op.tag.layer;
    e.length = op.length;
  }
  ctx_->table->Set(op.slot, e);
  return s;
}

}  // namespace kvpool
