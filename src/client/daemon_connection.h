// One connection of a client to kvpoold: the socket, the thread that
// receives the daemon's frames, and the calls waiting for them.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include <kvpool/result.h>

#include "ipc/shared_region.h"
#include "ipc/unix_socket.h"
#include "ipc/wire.h"

namespace kvpool::client {

using SteadyClock = std::chrono::steady_clock;

// A request sent and not yet answered.
struct PendingCall {
  // Runs on the receiver thread for each LayerReady of this call, before the
  // reply; must not block.
  std::function<void(const ipc::LayerReady&)> on_layer;
  // Kept until the call is done: memory the daemon may still write (staging).
  std::shared_ptr<void> hold;

  std::mutex mu;
  std::condition_variable cv;
  bool done = false;                // guarded by mu
  Status failure;                   // guarded by mu: the connection broke first
  ipc::Reply reply;                 // guarded by mu
  SteadyClock::time_point progress; // guarded by mu: last frame of this call
  SteadyClock::time_point sent = SteadyClock::now();
};

class DaemonConnection {
 public:
  // Connects to `path`, registers `tenant` and passes `region` (may be null:
  // an admin connection, Stats only). The daemon's answer lands in `hello`.
  // Errors: IOError naming the path, or the daemon's refusal.
  static Result<std::shared_ptr<DaemonConnection>> Open(const std::string& path, const std::string& tenant,
                                                        const ipc::SharedRegion* region, int timeout_ms,
                                                        ipc::HelloOk* hello);
  ~DaemonConnection();
  DaemonConnection(const DaemonConnection&) = delete;
  DaemonConnection& operator=(const DaemonConnection&) = delete;

  // Sends one request. IOError when the connection is (or becomes) broken.
  Result<std::shared_ptr<PendingCall>> Start(ipc::MsgType type, std::span<const std::byte> body,
                                             std::function<void(const ipc::LayerReady&)> on_layer = {},
                                             std::shared_ptr<void> hold = {});
  // The daemon's reply to `call`. IOError when the connection broke, or when
  // nothing of the call arrived for timeout_ms (the connection is then
  // broken: timed_out() becomes true).
  Result<ipc::Reply> Wait(PendingCall& call);
  // Start + Wait; a non-OK reply code becomes the returned Status.
  Result<ipc::Reply> Call(ipc::MsgType type, std::span<const std::byte> body);

  bool broken() const { return broken_.load(); }
  // Broken by a timeout: the daemon may still be writing into the region.
  bool timed_out() const { return timed_out_.load(); }
  // Fails every pending call with `why` and stops the receiver.
  void Break(const Status& why);

 private:
  DaemonConnection(ipc::Fd sock, std::string path, int timeout_ms);
  void ReceiveLoop();
  void Deliver(ipc::ReceivedFrame& frame);
  std::shared_ptr<PendingCall> Find(uint64_t id, bool erase);

  ipc::Fd sock_;
  const std::string path_;
  const int timeout_ms_;
  std::atomic<bool> broken_{false};
  std::atomic<bool> timed_out_{false};
  std::mutex send_mu_;
  std::mutex mu_;
  uint64_t next_id_ = 1;                                              // guarded by mu_
  std::unordered_map<uint64_t, std::shared_ptr<PendingCall>> pending_;  // guarded by mu_
  Status broken_why_;                                                  // guarded by mu_
  std::thread receiver_;
};

}  // namespace kvpool::client
