// A small Redis Cluster client for the pool's `redis` device.
//
// It keeps a slot map (which master serves each of the 16384 hash slots),
// one connection per node, and runs batches of commands: every command of a
// batch is routed by its key's slot, pipelined on its node's connection, and
// all nodes are served at once from one poll() loop over non-blocking
// sockets. MOVED replies update the map (and mark it for a full refresh);
// ASK replies send ASKING and the command once to the node named. No call
// blocks past ClusterOptions::timeout.
//
// hiredis 0.14 has no cluster support and is used only to encode commands
// and decode replies (tier/redis/node_connection.h).
//
// Thread-compatible: one ClusterClient per thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <kvpool/result.h>
#include <kvpool/status.h>

#include "tier/redis/crc16.h"
#include "tier/redis/reply.h"
#include "tier/redis/slot_map.h"

struct redisReply;  // hiredis

namespace kvpool::redis {

struct ClusterOptions {
  std::vector<std::string> seeds;  // "host:port"; any reachable one gives the slot map
  std::string user;                // ACL user (AUTH user password); empty: AUTH password only
  std::string password;            // empty: no AUTH
  std::chrono::milliseconds timeout{500};  // bound on one Execute call, connect included
  uint32_t max_redirects = 5;              // MOVED/ASK followed per command
};

// One command. args[0] is the verb; `key` is the key whose slot routes the
// command (normally a view of one of the args). The views must stay valid
// during Execute.
struct Command {
  std::vector<std::string_view> args;
  std::string_view key;
};

class NodeConnection;

class ClusterClient {
 public:
  struct Counters {
    uint64_t commands = 0;            // commands given to Execute
    uint64_t moved = 0;               // MOVED replies followed
    uint64_t asked = 0;               // ASK replies followed
    uint64_t timeouts = 0;            // commands that got no reply in time
    uint64_t connection_errors = 0;   // connects refused, resets, AUTH failures
    uint64_t slot_map_refreshes = 0;  // slot maps loaded after Connect's
  };

  // Validates the options and loads the slot map from the first seed that
  // answers CLUSTER SLOTS (all seeds are asked at once, within
  // options.timeout). InvalidArgument naming a bad seed ("host:port" with a
  // port in 1..65535); IOError naming every seed tried and what each did.
  static Result<std::unique_ptr<ClusterClient>> Connect(const ClusterOptions& options);

  ~ClusterClient();
  ClusterClient(const ClusterClient&) = delete;
  ClusterClient& operator=(const ClusterClient&) = delete;

  // Runs every command and sets replies[i] for cmds[i] (REQUIRES:
  // replies.size() >= cmds.size()). Commands for one node are pipelined in
  // order on its connection; nodes are served concurrently. Returns within
  // options.timeout of the call: a command not answered by then gets IOError
  // "timeout after N ms waiting for host:port" and that node's connection is
  // closed (reopened on next use). A node that refuses the connection or
  // resets it fails its commands with IOError. After a timeout, a connection
  // error or a MOVED, the slot map is refreshed from any reachable node at
  // the start of the next Execute.
  void Execute(std::span<const Command> cmds, std::span<Reply> replies);

  // Reloads the slot map from whichever known node answers first (all are
  // asked at once, within options.timeout). IOError naming the nodes tried.
  Status RefreshSlotMap();

  // "host:port" of the master the slot map names for `slot`; empty when none.
  std::string NodeForSlot(uint16_t slot) const;
  Counters counters() const { return counters_; }

 private:
  struct Node;
  struct Op;
  struct InFlight;

  explicit ClusterClient(ClusterOptions options);

  // Interns a node address; SlotMap::kNoNode when the table is full.
  uint16_t NodeIndex(const HostPort& hp);
  // Loads the map from the first of `nodes` to answer before `deadline`.
  Status Refresh(const std::vector<uint16_t>& nodes, std::chrono::steady_clock::time_point deadline);
  void InstallSlotMap(const std::vector<SlotRange>& ranges);

  // Nodes to ask for a refresh: those with an open connection first.
  std::vector<uint16_t> RefreshCandidates() const;

  // The event loop: runs `ops` until every one is done, `accept(op)` returns
  // true for an op just finished, or `deadline` (the ops left then time out).
  // Whatever nodes still owe afterwards is dropped when it arrives.
  template <typename Accept>
  void Run(std::span<Op> ops, std::chrono::steady_clock::time_point deadline, Accept accept);
  void Dispatch(Op& op);
  void FillPipeline(Node& node);
  Status OpenNode(Node& node);
  void OnReply(Node& node, redisReply* reply);
  void FinishOp(Op& op, redisReply* reply, Status status);
  void FailNode(Node& node, const Status& status, bool connection_error);
  void TimeOut(std::span<Op> ops);
  bool FollowRedirect(Op& op, const Node& from, const redisReply* reply);

  const ClusterOptions options_;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::unordered_map<std::string, uint16_t> node_index_;  // "host:port" -> index in nodes_
  SlotMap slot_map_;
  bool refresh_needed_ = false;
  uint64_t run_id_ = 0;                   // counts Run calls (Node::open_error is per Run)
  uint32_t ops_pending_ = 0;              // ops of the current Run not done
  std::vector<Op*>* finished_ = nullptr;  // ops the current Run finished, for its accept
  Counters counters_;
};

}  // namespace kvpool::redis
