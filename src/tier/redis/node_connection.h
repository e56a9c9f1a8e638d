// One non-blocking TCP connection to one Redis node.
//
// hiredis is the protocol reader and writer: redisConnectNonBlock opens the
// socket (non-blocking, TCP_NODELAY), redisFormatCommandArgv encodes each
// command and the context's reader (redisReaderFeed, redisGetReplyFromReader)
// decodes replies. The bytes themselves are moved here: send(MSG_NOSIGNAL) so
// that a peer that reset the connection never raises SIGPIPE in the process,
// a queue of encoded commands so that a large pipeline is never memmoved, and
// reads in 256 KiB pieces, each drained of replies before the next. The
// reader keeps its buffer between replies (maxbuf 0, as redis-benchmark
// does): by default hiredis frees it whenever it empties, so every
// megabyte-sized reply regrew it from nothing, realloc by realloc, each
// growth a copy and fresh pages to fault in. Every byte read passes a
// RespGuard first, so that no reply can make the reader allocate without
// bound (see resp_guard.h).
//
// The owner drives it from its poll() loop: PollEvents() says what to wait
// for, Service() acts on what poll() returned. Every error closes the
// connection and is an IOError whose message starts with "host:port: ".
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <kvpool/status.h>

#include "tier/redis/resp_guard.h"

struct redisContext;  // hiredis
struct redisReply;

namespace kvpool::redis {

class NodeConnection {
 public:
  NodeConnection(std::string host, uint16_t port);
  ~NodeConnection();
  NodeConnection(const NodeConnection&) = delete;
  NodeConnection& operator=(const NodeConnection&) = delete;

  const std::string& address() const { return address_; }  // "host:port"
  // A socket exists: the connect is in progress or done.
  bool is_open() const { return ctx_ != nullptr; }
  // The TCP connect has completed.
  bool connected() const { return connected_; }
  // The socket; -1 when closed.
  int fd() const;

  // Starts a non-blocking connect (the host name, if not an address, is
  // resolved synchronously). REQUIRES: !is_open(). IOError when the connect
  // fails at once (refused, unresolvable host).
  Status Open();
  // Drops the socket, the queued output and any partial reply.
  void Close();
  // For an idle open connection about to be reused: true when the peer has
  // closed it or sent bytes nobody asked for (either way it is not usable).
  bool PeerClosed() const;

  // Encodes one command (args[0] is the verb) at the end of the output queue.
  // REQUIRES: is_open(). InvalidArgument for no args or a command over 2 GiB.
  Status Append(std::span<const std::string_view> args);
  // Encoded bytes not yet handed to the socket.
  size_t queued_bytes() const { return queued_; }

  // The poll() events to wait for: POLLOUT while connecting or while output
  // is queued, POLLIN once connected. 0 when closed.
  short PollEvents() const;
  // Acts on `revents` from poll(): completes the connect, sends what the
  // socket takes, reads what arrived (at most 1 MiB per call) and appends
  // every complete reply to `replies`; the caller frees them with
  // freeReplyObject. On error the connection is closed (replies decoded
  // before the error are still appended).
  Status Service(short revents, std::vector<redisReply*>* replies);

 private:
  struct Chunk {
    char* data = nullptr;  // from redisFormatCommandArgv; freed with redisFreeCommand
    size_t size = 0;
  };

  Status FinishConnect();
  Status Flush();
  Status ReadAvailable(std::vector<redisReply*>* replies);
  Status Fail(std::string_view what, int err);  // closes; IOError "host:port: what: strerror"
  Status Fail(std::string_view what);           // closes; IOError "host:port: what"
  void DropOutput();

  const std::string host_;
  const uint16_t port_;
  const std::string address_;
  redisContext* ctx_ = nullptr;
  bool connected_ = false;
  std::deque<Chunk> out_;
  size_t sent_of_front_ = 0;  // bytes of out_.front() already sent
  size_t queued_ = 0;
  std::vector<const char*> argv_;  // scratch for Append
  std::vector<size_t> argv_len_;
  std::array<char, 256 * 1024> read_buf_;
  RespGuard guard_;  // of the bytes read since Open()
};

}  // namespace kvpool::redis
