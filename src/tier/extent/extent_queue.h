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
// op->bounced is set.
// Payload checksums are verified by the runner (core/device_runner.cc).
#pragma once

#include <atomic>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "format/layout.h"
#include "tier/device.h"
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
  Status FinishRead(SegmentIo& op, const RawIo& io);
  Status FinishWrite(SegmentIo& op, const RawIo& io, uint64_t write_id);
  Status TransferStatus(const SegmentIo& op, const RawIo& io) const;

  std::unique_ptr<RawQueue> raw_;
  const ExtentContext* ctx_;
  std::vector<RawIo> ios_;       // per wave
  std::vector<SegmentIo*> ops_;  // per wave, parallel to ios_
  std::vector<uint64_t> write_ids_;
};

}  // namespace kvpool
