// The engine layer of the extent device: batches of aligned transfers
// between an O_DIRECT file descriptor and a queue's own bounce buffers.
// Slot headers, checksums and the slot table live one layer up
// (extent_queue.h); an engine only moves blocks.
//
// One RawQueue per worker thread; Run is called by one thread at a time and
// takes no lock. Engines: "uring" (io_uring, registered buffers, fixed file,
// READ_FIXED/WRITE_FIXED; READV/WRITEV for direct transfers) and "psync"
// (pread/pwrite, preadv/pwritev).
//
// Direct transfers (zero-copy). A RawIo with `direct` set moves the middle
// of its range straight between the file and the caller's memory:
//
//   file:   [ offset, +4096 )        [ +4096, +4096+direct_bytes )   [ rest )
//   memory: arena buffer [0, 4096)   direct                          arena buffer [4096, ...)
//
// so a slot's header lands in (or comes from) the arena while its payload
// does not pass through it; only a payload's last partial block does.
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include <kvpool/result.h>

#include "tier/device.h"
#include "tier/extent/buffer_arena.h"

namespace kvpool {

struct RawIo {
  IoKind kind = IoKind::kRead;
  uint64_t offset = 0;  // multiple of 4096
  uint32_t length = 0;  // multiple of 4096; without `direct`, <= arena buffer_bytes
  uint32_t buffer = 0;  // arena buffer index
  int64_t result = 0;   // set by Run: bytes transferred, or -errno
  // Direct transfer (see above): caller memory of direct_bytes, aligned as
  // the target asks (BlockTarget::direct_alignment)
  // (a multiple of 4096, 0 < direct_bytes <= length - 4096). Only for
  // engines that supports_direct(). The caller keeps it valid until the
  // transfer completes.
  std::byte* direct = nullptr;
  uint32_t direct_bytes = 0;
  iovec iov[3] = {};  // the engine's; valid until the transfer completes
};

// Fills io->iov for a direct transfer through arena buffer `arena_buffer`;
// returns how many entries it used (2 or 3).
int DirectIovecs(RawIo* io, std::byte* arena_buffer);

// Time-weighted count of transfers in flight, kept by the engine of one
// queue (its worker thread writes, any thread reads). mean in flight over
// an interval = delta(in_flight_ns) / delta(wall ns), the same measure as
// fio's "IO depths" average.
struct InFlightCounters {
  std::atomic<uint64_t> in_flight_ns{0};  // integral of (transfers in flight) dt
  std::atomic<uint64_t> busy_ns{0};       // wall time with at least one in flight
};

struct EngineConfig {
  std::string engine;       // "uring" or "psync"
  int fd = -1;              // opened O_DIRECT, owned by the device
  uint32_t depth = 1;       // most RawIo per Run; also the number of buffers
  size_t buffer_bytes = 0;  // bytes per buffer, multiple of 4096
  bool sqpoll = false;      // uring: kernel submission thread
  std::string what;         // "device 'name'", for error messages
};

// Feeds a RawQueue::RunStream: transfers are pulled one at a time as
// buffers free up, and handed back one at a time as they complete.
//
// Work on a completed transfer comes in two steps, so that the device is
// never idle while the CPU checks what it delivered: Complete does what
// needs the transfer's arena buffer, then the engine refills the freed
// buffers and submits them, then calls Drain for the rest (payload
// verification, the owner's callback).
class RawStream {
 public:
  // Fills `io` for the next transfer, using arena buffer `buffer`
  // (io->buffer = buffer). Returns false when there is nothing left.
  virtual bool Next(uint32_t buffer, RawIo* io) = 0;
  // `io` is complete (io.result set). Its buffer is reused once this returns.
  virtual void Complete(RawIo& io) = 0;
  // Finishes the transfers completed so far. Engines call it after
  // submitting the transfers that refilled their buffers, and always
  // before RunStream returns.
  virtual void Drain() {}

 protected:
  ~RawStream() = default;
};

class RawQueue {
 public:
  virtual ~RawQueue() = default;
  // Runs every io (at most depth()) to completion; sets each io.result.
  virtual void Run(std::span<RawIo> ios) = 0;
  // Runs the stream to its end with up to depth() transfers in flight.
  // Default: waves of depth() transfers through Run.
  virtual void RunStream(RawStream& stream);
  virtual std::string_view engine() const = 0;
  virtual bool registered_buffers() const = 0;
  // True when the engine carries out direct transfers (RawIo::direct).
  virtual bool supports_direct() const { return false; }
  // True when a direct transfer may use `bytes` of caller memory at
  // `memory` (already aligned as the target asks); only asked when
  // supports_direct().
  virtual bool DirectOk(const std::byte* /*memory*/, size_t /*bytes*/) const { return true; }

  BufferArena& arena() { return arena_; }
  uint32_t depth() const { return arena_.count(); }
  const InFlightCounters& in_flight() const { return in_flight_; }

 protected:
  explicit RawQueue(BufferArena arena) : arena_(std::move(arena)) {}
  // Engines call this whenever the number of their transfers in flight is
  // about to change: `in_flight` is the count since the previous call.
  void NoteInFlight(uint32_t in_flight);

  BufferArena arena_;
  InFlightCounters in_flight_;

 private:
  uint64_t last_note_ns_ = 0;
};

// Opens a queue of config.engine. Errors: Unsupported when io_uring is not
// built in or not offered by the kernel (the message says to set engine =
// "psync"), IOError otherwise; messages start with config.what.
Result<std::unique_ptr<RawQueue>> NewRawQueue(const EngineConfig& config);

// Engines (uring_queue.cc, or uring_unavailable.cc without liburing; psync_queue.cc).
Result<std::unique_ptr<RawQueue>> NewUringQueue(const EngineConfig& config, BufferArena arena);
Result<std::unique_ptr<RawQueue>> NewPsyncQueue(const EngineConfig& config, BufferArena arena);
// OK when io_uring works here; the Unsupported error NewUringQueue would give otherwise.
Status CheckUringAvailable(const std::string& what);

}  // namespace kvpool
