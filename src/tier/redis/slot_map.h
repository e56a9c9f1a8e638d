// Redis Cluster routing data: node addresses, the slot -> node table, and the
// parsers for what nodes say about it (CLUSTER SLOTS replies, MOVED and ASK
// errors). Every parser treats its input as untrusted network data: types,
// counts and ranges are checked, nothing is indexed out of bounds.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <kvpool/result.h>

#include "tier/redis/crc16.h"

struct redisReply;  // hiredis

namespace kvpool::redis {

struct HostPort {
  std::string host;
  uint16_t port = 0;

  std::string ToString() const;  // "host:port" ("[v6]:port" for an IPv6 address)
  bool operator==(const HostPort&) const = default;
};

// Parses "host:port" (or "[v6 address]:port"). InvalidArgument naming `text`
// unless the host is non-empty and the port is a number in 1..65535.
Result<HostPort> ParseHostPort(std::string_view text);

// One entry of a CLUSTER SLOTS reply: slots first..last are served by master.
struct SlotRange {
  uint16_t first = 0;
  uint16_t last = 0;
  HostPort master;
  std::vector<HostPort> replicas;
};

// Parses a CLUSTER SLOTS reply received from the node at `from`. An empty
// host in the reply names `from`'s host (Redis does so for the node that
// answered when it does not know its own address); a range whose master's
// endpoint is unknown ("?") is skipped, as are replicas with one. IOError
// naming `from` when the reply is not a well-formed slot table or has no range.
Result<std::vector<SlotRange>> ParseClusterSlots(const redisReply* reply, const HostPort& from);

// A redirection error reply: "MOVED <slot> <host>:<port>" or "ASK <slot> <host>:<port>".
struct Redirect {
  enum class Kind : uint8_t { kMoved, kAsk };
  Kind kind = Kind::kMoved;
  uint16_t slot = 0;
  HostPort target;
};

// Parses the text of an error reply from the node at `from`; nullopt when it
// is no well-formed redirection. An empty host (":port") names `from`'s host.
std::optional<Redirect> ParseRedirect(std::string_view error, const HostPort& from);

// Which node serves each slot, as indices into the client's node table.
class SlotMap {
 public:
  static constexpr uint16_t kNoNode = 0xFFFF;

  SlotMap() { Clear(); }

  // REQUIRES: slot < kClusterSlots.
  uint16_t node(uint16_t slot) const { return nodes_[slot]; }
  void Set(uint16_t slot, uint16_t node) { nodes_[slot] = node; }
  // REQUIRES: first <= last < kClusterSlots.
  void SetRange(uint16_t first, uint16_t last, uint16_t node);
  void Clear() { nodes_.fill(kNoNode); }
  // Slots that name a node.
  uint32_t covered() const;

 private:
  std::array<uint16_t, kClusterSlots> nodes_;
};

}  // namespace kvpool::redis
