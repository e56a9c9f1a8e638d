// The extent device's IoQueue: turns segment reads and writes into aligned
// slot transfers on a RawQueue (one per worker thread).
//
// A write issues ONE aligned transfer of header + payload; when it completes
// the slot table learns the new header. A read fetches header + payload in
// one transfer and checks the header (magic, checksum, pool/device/slot
// identity, chunk key, layer, length); any mismatch is Corruption, a failed
// or short transfer is an I/O error, and in both cases op->buffer's bytes
// are unspecified.
//
// Zero-copy: when DeviceOptions::zero_copy is on, op->buffer has the
// target's direct alignment (BlockTarget::direct_alignment: 4 bytes on NVMe,
// 512 on virtio-blk, 4096 where the kernel does not say) and the engine
// supports direct transfers, the payload's whole blocks move straight
// between the file and op->buffer (a vectored transfer, raw_queue.h); the
// header, and a last partial block, pass through the queue's bounce buffer.
// Otherwise the whole payload is copied through the bounce buffer and
// op->bounced is set. A direct transfer the kernel refuses (EINVAL: memory
// it reported it would take, it does not) is redone synchronously through
// the bounce buffer, and the device bounces everything from then on
// (ExtentContext::direct_refused).
// Payload checksums are verified by the runner (core/device_runner.cc).
#pragma once

#include <atomic>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "format/layout.h"
#include "tier/device.h"
#include "tier/extent/block_target.h"
#include "tier/extent/raw_queue.h"
#include "tier/extent/slot_table.h"

namespace kvpool {

// State every queue of one extent device shares; fixed after open, except
// the table and the write counter, which are thread-safe.
struct ExtentContext {
  std::string what;  // "device 'name'"
  format::Layout layout;
  ChunkKey pool_id;
  ChunkKey device_id;
  SlotTable* table = nullptr;
  std::atomic<uint64_t>* next_write_id = nullptr;
  bool zero_copy = true;  // DeviceOptions::zero_copy
  // Caller memory at this alignment moves directly (BlockTarget::direct_alignment).
  size_t direct_alignment = 4096;
  // Where a refused direct transfer is redone through the bounce buffer
  // (BlockTarget::ReadAt / WriteAt). A transfer is redone only when both
  // this and direct_refused are set; otherwise it fails.
  BlockTarget* target = nullptr;
  // Set, for good, by the first direct transfer the kernel refuses with
  // EINVAL: its alignment report did not hold for this device. Every later
  // transfer bounces. Null: never set.
  std::atomic<bool>* direct_refused = nullptr;

  // True while caller memory may move directly.
  bool direct_allowed() const {
    return zero_copy &&
           (direct_refused == nullptr || !direct_refused->load(std::memory_order_relaxed));
  }
};

class ExtentQueue final : public IoQueue {
 public:
  // `context` must outlive the queue.
  ExtentQueue(std::unique_ptr<RawQueue> raw, const ExtentContext* context);
  void Execute(std::span<SegmentIo* const> ops) override;
  // Keeps queue_depth slot transfers in flight and hands each op to `sink`
  // as it completes (header checks and payload copy done), once the
  // transfers that take its place are submitted (RawStream::Drain).
  void ExecuteStreaming(std::span<SegmentIo* const> ops, IoStreamSink& sink) override;
  uint64_t in_flight_ns() const override {
    return raw_->in_flight().in_flight_ns.load(std::memory_order_relaxed);
  }

 private:
  class Stream;

  void RunWave(std::span<SegmentIo* const> ops);
  // Fills the bounce buffer and `io`; an error leaves the op out of the wave.
  Status Prepare(SegmentIo& op, uint32_t buffer, RawIo* io, uint64_t* write_id);
  Status FinishRead(SegmentIo& op, RawIo& io);
  Status FinishWrite(SegmentIo& op, RawIo& io, uint64_t write_id);
  // The transfer's outcome, once a refused direct transfer is redone.
  Status Transferred(SegmentIo& op, RawIo& io);
  Status TransferStatus(const SegmentIo& op, const RawIo& io) const;
  Status RedoBounced(SegmentIo& op, RawIo& io);

  std::unique_ptr<RawQueue> raw_;
  const ExtentContext* ctx_;
  std::vector<RawIo> ios_;       // per wave
  std::vector<SegmentIo*> ops_;  // per wave, parallel to ios_
  std::vector<uint64_t> write_ids_;
};

}  // namespace kvpool
