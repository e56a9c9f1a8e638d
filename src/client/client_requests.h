// The Retrieve and Offload requests of a ClientPool, and the staging of
// buffers that are not in the shared region.
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include <kvpool/client.h>

#include "client/daemon_connection.h"
#include "client/region_allocator.h"
#include "core/completion.h"
#include "util/clock.h"

namespace kvpool {

// The region of one connection generation and its allocator.
struct RegionState {
  std::unique_ptr<ipc::SharedRegion> region;
  std::unique_ptr<client::RegionAllocator> allocator;
};

// A run of a RegionState; returned to its allocator on destruction.
struct SharedBuffer::Lease {
  std::shared_ptr<RegionState> owner;
  uint64_t offset = 0;
  uint64_t bytes = 0;

  std::byte* data() const { return owner->region->data() + offset; }
  ~Lease() { owner->allocator->Free(offset); }
};

namespace client {

// Staging of `chunks` chunks [first, first + chunks) of every layer, layer-major,
// one aligned segment each: segment (c, l) at data() + (l * chunks + c - first) * seg.
struct Staging {
  std::shared_ptr<SharedBuffer::Lease> lease;
  size_t first = 0;
  size_t chunks = 0;
  uint32_t layers = 0;
  size_t seg = 0;      // aligned segment bytes (stride)
  size_t payload = 0;  // bytes copied per segment

  std::byte* Segment(size_t chunk, uint32_t layer) const {
    return lease->data() + (static_cast<size_t>(layer) * chunks + chunk - first) * seg;
  }
  ipc::RegionSpan Span(std::span<const ChunkKey> keys) const;
  void CopyIn(const ConstKvBuffer& source) const;
  // Copies chunks [first, end) of one layer (or every layer) out to `destination`.
  void CopyOutLayer(const KvBuffer& destination, uint32_t layer, size_t end) const;
};

// The completion of a Retrieve sent to the daemon. With `staging`, each
// layer is copied out to `destination` as it lands (on the receiver thread)
// and the rest when Wait sees the reply.
class ClientRetrieve final : public internal::RetrieveCompletion {
 public:
  struct StagedCopy {
    Staging staging;
    KvBuffer destination;
    std::mutex mu;
    std::vector<bool> copied;  // per layer, guarded by mu
  };

  ClientRetrieve(std::shared_ptr<DaemonConnection> conn, size_t first, uint32_t layers,
                 std::shared_ptr<StagedCopy> staged);
  // A request that ended before reaching the daemon.
  static std::shared_ptr<ClientRetrieve> Finished(size_t value, Status error);

  void Attach(std::shared_ptr<PendingCall> call) { call_ = std::move(call); }

  Result<size_t> Wait() override;
  bool Done() const override;
  double ElapsedSeconds() const override;
  Status error() const override;

 private:
  ClientRetrieve() = default;
  void Resolve(const std::shared_ptr<DaemonConnection>& conn, PendingCall& call);

  std::shared_ptr<DaemonConnection> conn_;
  std::shared_ptr<PendingCall> call_;
  size_t first_ = 0;
  uint32_t layers_ = 0;
  std::shared_ptr<StagedCopy> staged_;

  mutable std::mutex mu_;
  bool resolved_ = false;  // guarded by mu_
  Status failure_;         // guarded by mu_: Wait's error
  size_t value_ = 0;       // guarded by mu_
  Status error_;           // guarded by mu_: what cut the result short
  double elapsed_ = 0;     // guarded by mu_
};

// The completion of an Offload sent to the daemon (or finished before).
class ClientOffload final : public internal::OffloadCompletion {
 public:
  ClientOffload(std::shared_ptr<DaemonConnection> conn, std::shared_ptr<PendingCall> call)
      : conn_(std::move(conn)), call_(std::move(call)) {}
  static std::shared_ptr<ClientOffload> Finished(Result<size_t> result);

  Result<size_t> Wait() override;
  bool Done() const override;

 private:
  std::shared_ptr<DaemonConnection> conn_;
  std::shared_ptr<PendingCall> call_;
  mutable std::mutex mu_;
  bool resolved_ = false;
  Result<size_t> result_ = Status::Aborted("not resolved");
};

// The reply of a Retrieve: its chunk count, and the error that cut it short
// (IOError and Corruption keep the count; other codes refuse the request).
bool IsDeviceError(StatusCode code);

}  // namespace client
}  // namespace kvpool
