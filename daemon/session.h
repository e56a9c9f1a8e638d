// One client connection of kvpoold. Three threads serve it:
//   reader:    receives frames, checks them, starts pool requests (it blocks
//              when the client has max_inflight requests in flight, or the
//              pool's write queue is full: backpressure reaches the client);
//   completer: waits for the pool's requests in order and queues replies;
//   writer:    sends queued frames; pool callbacks only ever queue.
// The client's shared region stays mapped until every request that names it
// has completed, so a client that dies mid-request leaves nothing half-done:
// its requests run to completion into (or out of) the daemon's mapping.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <variant>
#include <vector>

#include <kvpool/pool.h>

#include "ipc/shared_region.h"
#include "ipc/unix_socket.h"
#include "ipc/wire.h"
#include "tenants.h"

namespace kvpool::daemon {

class Daemon;

class Session {
 public:
  Session(Daemon& daemon, ipc::Fd sock, ipc::PeerCred peer, uint64_t id);
  ~Session();  // REQUIRES: finished()
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Starts the reader thread.
  void Start();
  // Stops reading new requests; what was accepted completes and is answered.
  void Shutdown();
  // True once every thread of the session has ended; then it may be destroyed.
  bool finished() const { return finished_.load(); }
  void Join();

  uint64_t id() const { return id_; }
  const ipc::PeerCred& peer() const { return peer_; }
  const Tenant* tenant() const { return tenant_; }

 private:
  struct InFlight {
    uint64_t request_id = 0;
    std::variant<RetrieveHandle, OffloadHandle> handle;
    std::vector<ChunkKey> pool_keys;
    size_t first = 0;
    uint64_t bytes_per_chunk = 0;
  };

  void ReadLoop();
  Status Hello();
  void Dispatch(ipc::ReceivedFrame& frame);
  // Each returns the refusal to send, or OK when the request was started
  // (its reply then comes from the completer) or answered.
  Status OnLookup(const ipc::ReceivedFrame& f);
  Status OnFindChild(const ipc::ReceivedFrame& f);
  Status OnRetrieve(const ipc::ReceivedFrame& f);
  Status OnOffload(const ipc::ReceivedFrame& f);
  Status OnRemove(const ipc::ReceivedFrame& f);
  Status OnFlush(const ipc::ReceivedFrame& f);
  Status OnStats(const ipc::ReceivedFrame& f);

  // A request on its way to the pool; Track hands it to the completer.
  InFlight NewOp(const ipc::ReceivedFrame& f, const ipc::RegionSpan& span) const;
  void Track(InFlight op);
  template <typename Byte>
  KvBufferT<Byte> BufferOf(const ipc::RegionSpan& span) const;
  Status CheckSpan(const ipc::RegionSpan& span) const;

  void Reply(uint64_t request_id, const ipc::Reply& reply);
  void Send(std::vector<std::byte> frame);
  void WriteLoop();
  void CompleteLoop();
  void Complete(InFlight& op);
  void AcquireSlot();
  void ReleaseSlot();

  Daemon& daemon_;
  ipc::Fd sock_;
  const ipc::PeerCred peer_;
  const uint64_t id_;
  Tenant* tenant_ = nullptr;
  bool admin_ = false;
  std::unique_ptr<ipc::SharedRegion> region_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::vector<std::byte>> outbox_;  // guarded by mu_
  std::deque<InFlight> inflight_;              // guarded by mu_
  uint32_t slots_used_ = 0;                    // guarded by mu_
  bool reading_done_ = false;                  // guarded by mu_
  bool completing_done_ = false;               // guarded by mu_
  bool send_failed_ = false;                   // guarded by mu_

  std::atomic<bool> finished_{false};
  std::thread reader_, completer_, writer_;
};

}  // namespace kvpool::daemon
