// Unix stream sockets for kvpoold: listen, connect, peer credentials, and
// whole frames (ipc/wire.h) with file descriptors passed by SCM_RIGHTS.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include <kvpool/result.h>

#include "ipc/wire.h"

namespace kvpool::ipc {

// An owned file descriptor, closed on destruction.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.Release()) {}
  Fd& operator=(Fd&& o) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { Reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release();
  void Reset();

 private:
  int fd_ = -1;
};

struct PeerCred {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

// Binds and listens on `path` with permissions `mode`. A socket file left by
// a dead daemon is replaced; one that a live daemon answers on is not
// (IOError "already serving"). Any other file at the path is an error.
Result<Fd> ListenUnix(const std::string& path, unsigned mode, int backlog);
// Accepts one connection (CLOEXEC). IOError; Aborted when the listener was shut down.
Result<Fd> AcceptUnix(int listener);
// Connects within `timeout_ms`. IOError naming the path.
Result<Fd> ConnectUnix(const std::string& path, int timeout_ms);
Result<PeerCred> PeerCredentials(int sock);

// Sends all of `bytes`; `pass_fd` (>= 0) travels with the first byte.
// Never raises SIGPIPE. `timeout_ms` < 0 waits as long as it takes.
Status SendAll(int sock, std::span<const std::byte> bytes, int pass_fd, int timeout_ms);

struct ReceivedFrame {
  Header header;
  std::vector<std::byte> body;
  std::vector<Fd> fds;  // descriptors that came with the frame
};

// Receives one frame. NotFound when the peer closed the socket between
// frames; IOError when it closed mid-frame, on socket errors and after
// `timeout_ms` (< 0 waits forever) without data; InvalidArgument for a bad
// header. At most 4 descriptors per frame are kept; more are closed.
Result<ReceivedFrame> ReceiveFrame(int sock, int timeout_ms);

}  // namespace kvpool::ipc
