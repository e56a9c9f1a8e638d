// What every engine shares: the direct-transfer iovecs, the in-flight
// accounting, the default stream loop and the engine factory.
#include "tier/extent/raw_queue.h"

#include <vector>

#include "format/constants.h"
#include "util/clock.h"

namespace kvpool {

int DirectIovecs(RawIo* io, std::byte* arena_buffer) {
  const uint32_t tail = io->length - format::kBlockBytes - io->direct_bytes;
  io->iov[0] = {arena_buffer, format::kBlockBytes};
  io->iov[1] = {io->direct, io->direct_bytes};
  if (tail == 0) return 2;
  io->iov[2] = {arena_buffer + format::kBlockBytes, tail};
  return 3;
}

void RawQueue::NoteInFlight(uint32_t in_flight) {
  const uint64_t now = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count());
  if (in_flight > 0 && last_note_ns_ != 0) {
    const uint64_t dt = now - last_note_ns_;
    in_flight_.busy_ns.fetch_add(dt, std::memory_order_relaxed);
    in_flight_.in_flight_ns.fetch_add(dt * in_flight, std::memory_order_relaxed);
  }
  last_note_ns_ = now;
}

void RawQueue::RunStream(RawStream& stream) {
  std::vector<RawIo> wave;
  bool more = true;
  while (more) {
    wave.clear();
    for (uint32_t b = 0; b < depth(); ++b) {
      RawIo io;
      if (!stream.Next(b, &io)) {
        more = false;
        break;
      }
      wave.push_back(io);
    }
    if (wave.empty()) return;
    Run(wave);
    for (RawIo& io : wave) stream.Complete(io);
    stream.Drain();
  }
}

Result<std::unique_ptr<RawQueue>> NewRawQueue(const EngineConfig& config) {
  auto arena = BufferArena::Create(config.depth, config.buffer_bytes, config.what);
  if (!arena.ok()) return arena.status();
  if (config.engine == "psync") return NewPsyncQueue(config, std::move(arena).value());
  if (config.engine == "uring") return NewUringQueue(config, std::move(arena).value());
  return Status::InvalidArgument(config.what + ": unknown engine '" + config.engine +
                                 "' (use \"uring\" or \"psync\")");
}

}  // namespace kvpool
