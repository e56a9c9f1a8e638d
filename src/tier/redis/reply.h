// Replies of the Redis Cluster client (tier/redis/cluster_client.h): an
// owning Reply per command and non-owning views into its elements.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include <kvpool/status.h>

struct redisReply;  // hiredis

namespace kvpool::redis {

class ClusterClient;

enum class ReplyKind : uint8_t { kNone, kNil, kString, kStatus, kInteger, kArray, kError };

// A non-owning view of a reply or of one element of an array reply. Valid
// while the Reply it came from is.
class ReplyView {
 public:
  using Kind = ReplyKind;
  ReplyView() = default;
  explicit ReplyView(const redisReply* r) : r_(r) {}

  Kind kind() const;
  std::string_view str() const;  // kString/kStatus/kError; empty otherwise
  long long integer() const;     // kInteger; 0 otherwise
  size_t size() const;           // elements of kArray; 0 otherwise
  ReplyView operator[](size_t i) const;  // REQUIRES: i < size()

 private:
  const redisReply* r_ = nullptr;
};

// One reply. Owns the hiredis reply object; no copy of bulk data is made:
// str() points into it.
class Reply {
 public:
  using Kind = ReplyKind;

  Reply() = default;
  Reply(Reply&& o) noexcept;
  Reply& operator=(Reply&& o) noexcept;
  Reply(const Reply&) = delete;
  Reply& operator=(const Reply&) = delete;
  ~Reply();

  // kNone when no reply came (transport error, timeout: see status()).
  Kind kind() const { return view().kind(); }
  std::string_view str() const { return view().str(); }
  long long integer() const { return view().integer(); }
  size_t size() const { return view().size(); }
  ReplyView operator[](size_t i) const { return view()[i]; }
  ReplyView view() const { return ReplyView(reply_); }

  // OK for every reply but an error reply. Otherwise:
  //   IOError  no reply: transport failure or timeout; the message names the
  //            node "host:port" and what happened
  //   Busy     error replies that say "retry later": OOM, BUSY, TRYAGAIN,
  //            LOADING, CLUSTERDOWN, MASTERDOWN, NOREPLICAS
  //   IOError  any other error reply (WRONGTYPE, ERR ..., MOVED past
  //            max_redirects)
  // An error reply's message is "host:port: <Redis's text>".
  const Status& status() const { return status_; }
  bool ok() const { return status_.ok(); }

  // Frees the reply; kind() becomes kNone and status() OK.
  void Reset();

 private:
  friend class ClusterClient;
  void Set(redisReply* reply, Status status);  // takes ownership of `reply`

  redisReply* reply_ = nullptr;
  Status status_;
};

}  // namespace kvpool::redis
