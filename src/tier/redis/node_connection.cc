#include "tier/redis/node_connection.h"

#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

namespace kvpool::redis {
namespace {

constexpr size_t kMaxIov = 64;          // encoded commands per sendmsg
constexpr int kMaxReadsPerService = 16;  // x 256 KiB: bounds one Service call

std::string JoinAddress(const std::string& host, uint16_t port) {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

}  // namespace

NodeConnection::NodeConnection(std::string host, uint16_t port)
    : host_(std::move(host)), port_(port), address_(JoinAddress(host_, port_)) {}

NodeConnection::~NodeConnection() { Close(); }

int NodeConnection::fd() const { return ctx_ != nullptr ? ctx_->fd : -1; }

Status NodeConnection::Open() {
  ctx_ = redisConnectNonBlock(host_.c_str(), port_);
  if (ctx_ == nullptr) return Status::IOError(address_ + ": connect failed: out of memory");
  if (ctx_->err != 0) {
    std::string why = ctx_->errstr;
    Close();
    return Status::IOError(address_ + ": connect failed: " + why);
  }
  ctx_->reader->maxbuf = 0;  // keep the reader's buffer (see the header)
  guard_.Reset();
  // hiredis sets TCP_NODELAY too; the contract is stated here.
  const int one = 1;
  ::setsockopt(ctx_->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  connected_ = false;
  return Status::OK();
}

void NodeConnection::Close() {
  DropOutput();
  if (ctx_ != nullptr) redisFree(ctx_);  // closes the socket, frees the reader
  ctx_ = nullptr;
  connected_ = false;
}

void NodeConnection::DropOutput() {
  for (Chunk& c : out_) redisFreeCommand(c.data);
  out_.clear();
  sent_of_front_ = 0;
  queued_ = 0;
}

bool NodeConnection::PeerClosed() const {
  if (ctx_ == nullptr || !connected_) return false;
  char byte;
  const ssize_t n = ::recv(ctx_->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0) return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
  return true;  // EOF, or bytes that answer nothing we sent
}

Status NodeConnection::Append(std::span<const std::string_view> args) {
  if (args.empty()) return Status::InvalidArgument(address_ + ": command has no arguments");
  argv_.clear();
  argv_len_.clear();
  size_t total = 0;
  for (std::string_view a : args) {
    argv_.push_back(a.data());
    argv_len_.push_back(a.size());
    total += a.size() + 32;
  }
  if (total > static_cast<size_t>(INT_MAX) || args.size() > static_cast<size_t>(INT_MAX)) {
    return Status::InvalidArgument(address_ + ": command over 2 GiB");
  }
  char* encoded = nullptr;
  const int len = redisFormatCommandArgv(&encoded, static_cast<int>(args.size()), argv_.data(),
                                         argv_len_.data());
  if (len < 0 || encoded == nullptr) return Status::IOError(address_ + ": out of memory encoding a command");
  out_.push_back(Chunk{encoded, static_cast<size_t>(len)});
  queued_ += static_cast<size_t>(len);
  return Status::OK();
}

short NodeConnection::PollEvents() const {
  if (ctx_ == nullptr) return 0;
  if (!connected_) return POLLOUT;
  return static_cast<short>(POLLIN | (queued_ > 0 ? POLLOUT : 0));
}

Status NodeConnection::Service(short revents, std::vector<redisReply*>* replies) {
  if (ctx_ == nullptr) return Fail("not connected");
  if (!connected_) {
    if ((revents & (POLLOUT | POLLERR | POLLHUP)) == 0) return Status::OK();
    KVP_RETURN_IF_ERROR(FinishConnect());
  }
  if ((revents & (POLLIN | POLLERR | POLLHUP)) != 0) KVP_RETURN_IF_ERROR(ReadAvailable(replies));
  if (queued_ > 0 && (revents & (POLLOUT | POLLERR | POLLHUP)) != 0) KVP_RETURN_IF_ERROR(Flush());
  return Status::OK();
}

Status NodeConnection::FinishConnect() {
  int err = 0;
  socklen_t len = sizeof(err);
  if (::getsockopt(ctx_->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err != 0) return Fail("connect failed", err);
  connected_ = true;
  return Status::OK();
}

Status NodeConnection::Flush() {
  while (!out_.empty()) {
    std::array<iovec, kMaxIov> iov;
    size_t n = 0;
    for (auto it = out_.begin(); it != out_.end() && n < kMaxIov; ++it, ++n) {
      const size_t skip = n == 0 ? sent_of_front_ : 0;
      iov[n].iov_base = it->data + skip;
      iov[n].iov_len = it->size - skip;
    }
    msghdr msg{};
    msg.msg_iov = iov.data();
    msg.msg_iovlen = n;
    const ssize_t sent = ::sendmsg(ctx_->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return Status::OK();
      return Fail("send failed", errno);
    }
    size_t left = static_cast<size_t>(sent);
    queued_ -= left;
    while (left > 0) {
      Chunk& front = out_.front();
      const size_t rest = front.size - sent_of_front_;
      if (left < rest) {
        sent_of_front_ += left;
        break;
      }
      left -= rest;
      redisFreeCommand(front.data);
      out_.pop_front();
      sent_of_front_ = 0;
    }
  }
  return Status::OK();
}

Status NodeConnection::ReadAvailable(std::vector<redisReply*>* replies) {
  for (int i = 0; i < kMaxReadsPerService; ++i) {
    const ssize_t n = ::read(ctx_->fd, read_buf_.data(), read_buf_.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return Status::OK();
      return Fail("read failed", errno);
    }
    if (n == 0) return Fail("connection closed by the server");
    if (Status s = guard_.Scan({read_buf_.data(), static_cast<size_t>(n)}); !s.ok()) {
      return Fail(s.message());
    }
    if (redisReaderFeed(ctx_->reader, read_buf_.data(), static_cast<size_t>(n)) != REDIS_OK) {
      return Fail("out of memory reading a reply");
    }
    for (;;) {
      void* reply = nullptr;
      if (redisGetReplyFromReader(ctx_, &reply) != REDIS_OK) {
        return Fail(std::string("protocol error: ") + ctx_->errstr);
      }
      if (reply == nullptr) break;
      replies->push_back(static_cast<redisReply*>(reply));
    }
    if (static_cast<size_t>(n) < read_buf_.size()) return Status::OK();  // drained
  }
  return Status::OK();
}

Status NodeConnection::Fail(std::string_view what, int err) {
  return Fail(std::string(what) + ": " + std::strerror(err));
}

Status NodeConnection::Fail(std::string_view what) {
  Close();
  return Status::IOError(address_ + ": " + std::string(what));
}

}  // namespace kvpool::redis
