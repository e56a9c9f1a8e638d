// The narrow interface every pool member implements.
//
// A Device is a fixed array of equal slots (slot_count() x slot_bytes()), each
// holding at most one segment payload. The pool decides which slot a segment
// goes to (core/slot_allocator.h); a device only moves bytes. I/O is issued
// through an IoQueue, one per worker thread: IoQueue::Execute runs a batch of
// operations to completion, sets each op's status and never takes a lock that
// another worker's I/O waits on.
//
// Checksums are not the device's business: core/device_runner.cc computes them
// before writes and verifies them after reads. Persistent devices store the
// checksum the runner gives them in their slot headers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <kvpool/keys.h>
#include <kvpool/options.h>
#include <kvpool/result.h>

namespace kvpool {

// What a stored segment is; persistent devices write it into slot headers.
struct SegmentTag {
  ChunkKey chunk;
  ChunkKey parent;        // zero for a prefix's first chunk
  uint32_t layer = 0;
  uint64_t sequence = 0;  // pool-wide write sequence number
};

enum class IoKind : uint8_t { kRead = 0, kWrite = 1 };

class IoOwner;
class RemoteTier;

// One segment read or write. Lives in the owner's request state until the
// owner's OnIoComplete has run.
struct SegmentIo {
  IoKind kind = IoKind::kRead;
  uint32_t slot = 0;
  uint32_t length = 0;         // payload bytes (<= device slot payload)
  std::byte* buffer = nullptr; // read: destination; write: source, not modified
  SegmentTag tag;
  uint64_t checksum = 0;       // write: filled by the runner; read: expected value
  // Write: the runner keeps op.checksum instead of computing it, because the
  // source bytes were just verified against it (a DRAM copy made from a
  // read). A later read of the copy still verifies it.
  bool checksum_given = false;
  Status status;               // set by the device (I/O) and the runner (checksum)
  // Set by block devices (extent, SPDK): the payload was copied through a
  // bounce buffer instead of moving straight to or from `buffer` (which is
  // not aligned as Device::direct_alignment asks, is under one block, or
  // the engine has no direct transfers). A payload's last partial block
  // always passes through the bounce buffer; that alone does not set it.
  bool bounced = false;
  // Read: set by a device that copied the payload into `buffer` itself
  // (DRAM, a fully bounced block read) and hashed each piece of `buffer`
  // right after writing it: `delivered_checksum` is Checksum64 of the bytes
  // now in `buffer`, and the runner compares it instead of reading the
  // payload a second time. Cleared by the runner before issue; whatever
  // changes `buffer` after the device must clear it too.
  bool delivered_checksum_known = false;
  uint64_t delivered_checksum = 0;
  IoOwner* owner = nullptr;
  uint32_t index = 0;          // owner's own bookkeeping
  uint16_t device = 0;
};

class IoOwner {
 public:
  virtual void OnIoComplete(SegmentIo& io) = 0;

 protected:
  ~IoOwner() = default;
};

// Receives the ops of an ExecuteStreaming call one at a time.
class IoStreamSink {
 public:
  // Called just before `op` is issued (for writes: the last moment to set
  // op.checksum).
  virtual void BeforeIssue(SegmentIo& op) = 0;
  // `op` is complete and its status set. The queue does not touch it again.
  virtual void Done(SegmentIo& op) = 0;
  // Called by a queue that keeps transfers in flight when it has issued
  // every op it was given and has room for more: may append further ops of
  // the same kind to `more` (returning true), which the queue runs in the
  // same stream, so that its transfers in flight do not drain to zero
  // between batches. Default: none.
  virtual bool Extend(std::vector<SegmentIo*>* more) {
    (void)more;
    return false;
  }

 protected:
  ~IoStreamSink() = default;
};

class IoQueue {
 public:
  virtual ~IoQueue() = default;
  // Runs every op to completion and sets op->status. Ops may complete in any
  // order. Called by one thread at a time.
  virtual void Execute(std::span<SegmentIo* const> ops) = 0;

  // Like Execute, but hands each op to `sink` as soon as it completes, so
  // the caller's per-op work overlaps the transfers still in flight.
  // Default: BeforeIssue for every op, Execute, then Done for every op.
  virtual void ExecuteStreaming(std::span<SegmentIo* const> ops, IoStreamSink& sink) {
    for (SegmentIo* op : ops) sink.BeforeIssue(*op);
    Execute(ops);
    for (SegmentIo* op : ops) sink.Done(*op);
  }

  // Integral over time of the transfers this queue had in flight, in
  // transfer-nanoseconds; divided by a wall time it is the mean number in
  // flight (what fio reports as its achieved depth). Any thread. Default 0:
  // a queue that does not keep transfers in flight (DRAM, files).
  virtual uint64_t in_flight_ns() const { return 0; }
};

// A segment found on a persistent device at open.
struct RecoveredSegment {
  SegmentTag tag;
  uint32_t slot = 0;
  uint32_t length = 0;
  uint64_t checksum = 0;
};

struct DeviceGeometry {
  uint64_t capacity_bytes = 0;  // usable bytes (slot_count x slot_payload_bytes)
  uint32_t slot_count = 0;
  uint32_t slot_payload_bytes = 0;  // largest payload a slot holds
};

class Device {
 public:
  virtual ~Device() = default;

  const DeviceOptions& options() const { return options_; }
  const std::string& name() const { return options_.name; }
  DeviceKind kind() const { return options_.kind; }
  const DeviceGeometry& geometry() const { return geometry_; }

  // A new queue for one worker thread. Errors name the device.
  virtual Result<std::unique_ptr<IoQueue>> NewIoQueue() = 0;

  // True when segments survive a restart (recovered through TakeRecovered).
  virtual bool persistent() const { return false; }
  // Segments found at open; called once by the pool. Default: none.
  virtual std::vector<RecoveredSegment> TakeRecovered() { return {}; }
  // The pool no longer uses `slot`. Persistent devices forget it so that a
  // restart does not resurrect it. Default: nothing to do.
  virtual void ReleaseSlot(uint32_t slot) { (void)slot; }
  // Persist whatever metadata speeds up the next open. Default: nothing.
  virtual Status Checkpoint() { return Status::OK(); }
  // Make the next reads cold (drop this device's pages from the page cache)
  // where that applies. Default: nothing to do.
  virtual void DropCaches() {}
  // The alignment of caller memory that a block device reads into and
  // writes from without a bounce buffer (SegmentIo::bounced): a power of two
  // up to 4096, as the kernel reports it for O_DIRECT. 0: the device copies
  // every payload (DRAM, files, zero_copy off). Default 0.
  virtual size_t direct_alignment() const { return 0; }
  // One line for `kvpool probe` and logs.
  virtual std::string Describe() const;
  // True when failures are expected to pass (a remote node fails over, a
  // network heals): the runner retries a quarantined device after a pause
  // instead of leaving it out for good. Default: false.
  virtual bool retries_after_quarantine() const { return false; }
  // The remote-tier side of a remote device (tier/remote_tier.h); null for
  // local devices.
  virtual RemoteTier* remote_tier() { return nullptr; }

 protected:
  Device(DeviceOptions options, DeviceGeometry geometry)
      : options_(std::move(options)), geometry_(geometry) {}

  DeviceOptions options_;
  DeviceGeometry geometry_;
};

// Geometry of a device whose slots each hold one payload rounded up to 4 KiB
// and nothing else. InvalidArgument, naming the device, when the capacity
// holds no slot.
Result<DeviceGeometry> PayloadSlotGeometry(const DeviceOptions& options,
                                           uint32_t segment_payload_bytes);

// Opens a device of options.kind for segments of `segment_payload_bytes`.
// `pool_id` identifies the pool on persistent devices (superblock).
// Errors: InvalidArgument, IOError, Unsupported; every message names the device.
Result<std::unique_ptr<Device>> OpenDevice(const DeviceOptions& options,
                                           uint32_t segment_payload_bytes,
                                           const ChunkKey& pool_id);

}  // namespace kvpool
