#include "ipc/unix_socket.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "util/errno_status.h"

namespace kvpool::ipc {
namespace {

constexpr size_t kMaxFdsPerFrame = 4;

Result<sockaddr_un> UnixAddress(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return Status::InvalidArgument("socket path '" + path + "' is empty or longer than " +
                                   std::to_string(sizeof(addr.sun_path) - 1) + " bytes");
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

// Waits until `sock` is ready for `events`. IOError after timeout_ms (< 0: forever).
Status WaitReady(int sock, short events, int timeout_ms, const char* what) {
  pollfd p{sock, events, 0};
  for (;;) {
    int r = poll(&p, 1, timeout_ms);
    if (r > 0) return Status::OK();
    if (r == 0) return Status::IOError(std::string(what) + " timed out after " + std::to_string(timeout_ms) + " ms");
    if (errno != EINTR) return ErrnoStatus(errno, what);
  }
}

bool LiveListener(const sockaddr_un& addr) {
  Fd probe(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!probe.valid()) return false;
  return connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0;
}

// Closes descriptors beyond the per-frame limit and keeps the rest.
void TakeFds(msghdr& msg, std::vector<Fd>& fds) {
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const unsigned char* data = CMSG_DATA(c);
    for (size_t i = 0; i < n; ++i) {
      int fd;
      std::memcpy(&fd, data + i * sizeof(int), sizeof(int));
      Fd owned(fd);
      if (fds.size() < kMaxFdsPerFrame) fds.push_back(std::move(owned));
    }
  }
}

// Reads exactly out.size() bytes. `clean_eof` tells whether EOF before the
// first byte is a clean close (NotFound) or a cut frame (IOError).
Status ReceiveExact(int sock, std::span<std::byte> out, std::vector<Fd>& fds, int timeout_ms,
                    bool clean_eof) {
  size_t got = 0;
  while (got < out.size()) {
    KVP_RETURN_IF_ERROR(WaitReady(sock, POLLIN, timeout_ms, "receiving from the peer"));
    iovec iov{out.data() + got, out.size() - got};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerFrame)];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    if (n < 0) return ErrnoStatus(errno, "receiving from the peer");
    TakeFds(msg, fds);
    if (n == 0) {
      if (clean_eof && got == 0) return Status::NotFound("the peer closed the connection");
      return Status::IOError("the peer closed the connection in the middle of a frame");
    }
    got += static_cast<size_t>(n);
  }
  return Status::OK();
}

}  // namespace

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    Reset();
    fd_ = o.Release();
  }
  return *this;
}

int Fd::Release() {
  int fd = fd_;
  fd_ = -1;
  return fd;
}

void Fd::Reset() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

Result<Fd> ListenUnix(const std::string& path, unsigned mode, int backlog) {
  KVP_ASSIGN_OR_RETURN(sockaddr_un addr, UnixAddress(path));
  struct stat st{};
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return Status::InvalidArgument("'" + path + "' exists and is not a socket");
    if (LiveListener(addr)) return Status::IOError("a daemon is already serving on '" + path + "'");
    unlink(path.c_str());  // left by a daemon that died
  }
  Fd sock(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!sock.valid()) return ErrnoStatus(errno, "socket(AF_UNIX)");
  if (bind(sock.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    return ErrnoStatus(errno, "binding '" + path + "'");
  }
  if (chmod(path.c_str(), static_cast<mode_t>(mode)) != 0) return ErrnoStatus(errno, "chmod '" + path + "'");
  if (listen(sock.get(), backlog) != 0) return ErrnoStatus(errno, "listening on '" + path + "'");
  return sock;
}

Result<Fd> AcceptUnix(int listener) {
  for (;;) {
    int fd = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) return Fd(fd);
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno == EINVAL || errno == EBADF) return Status::Aborted("the listener was shut down");
    return ErrnoStatus(errno, "accept");
  }
}

Result<Fd> ConnectUnix(const std::string& path, int timeout_ms) {
  KVP_ASSIGN_OR_RETURN(sockaddr_un addr, UnixAddress(path));
  Fd sock(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!sock.valid()) return ErrnoStatus(errno, "socket(AF_UNIX)");
  if (connect(sock.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    if (errno != EINPROGRESS && errno != EAGAIN) return ErrnoStatus(errno, "connecting to '" + path + "'");
    KVP_RETURN_IF_ERROR(WaitReady(sock.get(), POLLOUT, timeout_ms, "connecting").WithContext(path));
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(sock.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return ErrnoStatus(err, "connecting to '" + path + "'");
  }
  int flags = fcntl(sock.get(), F_GETFL);
  fcntl(sock.get(), F_SETFL, flags & ~O_NONBLOCK);
  return sock;
}

Result<PeerCred> PeerCredentials(int sock) {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return ErrnoStatus(errno, "SO_PEERCRED");
  return PeerCred{cred.pid, cred.uid, cred.gid};
}

Status SendAll(int sock, std::span<const std::byte> bytes, int pass_fd, int timeout_ms) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    KVP_RETURN_IF_ERROR(WaitReady(sock, POLLOUT, timeout_ms, "sending to the peer"));
    iovec iov{const_cast<std::byte*>(bytes.data() + sent), bytes.size() - sent};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    if (pass_fd >= 0 && sent == 0) {
      msg.msg_control = control;
      msg.msg_controllen = sizeof(control);
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
    }
    ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    if (n < 0) return ErrnoStatus(errno, "sending to the peer");
    sent += static_cast<size_t>(n);
  }
  return Status::OK();
}

Result<ReceivedFrame> ReceiveFrame(int sock, int timeout_ms) {
  ReceivedFrame frame;
  std::byte header[kHeaderBytes];
  KVP_RETURN_IF_ERROR(ReceiveExact(sock, header, frame.fds, timeout_ms, /*clean_eof=*/true));
  KVP_ASSIGN_OR_RETURN(frame.header, DecodeHeader(header));
  frame.body.resize(frame.header.body_len);
  KVP_RETURN_IF_ERROR(ReceiveExact(sock, frame.body, frame.fds, timeout_ms, /*clean_eof=*/false));
  return frame;
}

}  // namespace kvpool::ipc
