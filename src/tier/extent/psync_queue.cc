// The psync engine: pread/pwrite on the O_DIRECT descriptor, one transfer at
// a time, for kernels without io_uring. Still O_DIRECT, still bounce buffers
// from the arena (hugepages where available).
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "tier/extent/raw_queue.h"

namespace kvpool {
namespace {

// Transfers the whole length unless the kernel reports an error or EOF.
int64_t FullTransfer(int fd, const RawIo& io, std::byte* buffer) {
  uint64_t done = 0;
  while (done < io.length) {
    ssize_t n = io.kind == IoKind::kRead
                    ? ::pread(fd, buffer + done, io.length - done, off_t(io.offset + done))
                    : ::pwrite(fd, buffer + done, io.length - done, off_t(io.offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    if (n == 0) break;  // end of file: a short transfer
    done += static_cast<uint64_t>(n);
  }
  return static_cast<int64_t>(done);
}

class PsyncQueue final : public RawQueue {
 public:
  PsyncQueue(int fd, BufferArena arena) : RawQueue(std::move(arena)), fd_(fd) {}

  void Run(std::span<RawIo> ios) override {
    for (RawIo& io : ios) io.result = FullTransfer(fd_, io, arena_.buffer(io.buffer));
  }
  std::string_view engine() const override { return "psync"; }
  bool registered_buffers() const override { return false; }

 private:
  int fd_;
};

}  // namespace

Result<std::unique_ptr<RawQueue>> NewPsyncQueue(const EngineConfig& config, BufferArena arena) {
  return std::unique_ptr<RawQueue>(new PsyncQueue(config.fd, std::move(arena)));
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
