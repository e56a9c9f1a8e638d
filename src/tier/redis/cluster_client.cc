#include "tier/redis/cluster_client.h"

#include <hiredis/hiredis.h>
#include <poll.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <deque>

#include "tier/redis/node_connection.h"

namespace kvpool::redis {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kMaxNodes = 1024;           // distinct node addresses a client remembers
constexpr size_t kMaxRefreshFanout = 16;     // nodes asked at once for CLUSTER SLOTS
constexpr size_t kPipelineBytes = 1 << 20;   // encoded bytes queued per node ahead of the socket

constexpr std::array<std::string_view, 2> kClusterSlotsArgs = {"CLUSTER", "SLOTS"};
constexpr std::array<std::string_view, 1> kAskingArgs = {"ASKING"};

// Error replies that mean "the node cannot do it now; retry later".
bool IsRetryLater(std::string_view text) {
  const std::string_view word = text.substr(0, text.find(' '));
  for (std::string_view w : {"OOM", "BUSY", "TRYAGAIN", "LOADING", "CLUSTERDOWN", "MASTERDOWN",
                             "NOREPLICAS"}) {
    if (word == w) return true;
  }
  return false;
}

std::string_view Text(const redisReply* r) {
  return r == nullptr || r->str == nullptr ? std::string_view() : std::string_view(r->str, r->len);
}

std::string Join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (const std::string& p : parts) {
    if (!out.empty()) out += sep;
    out += p;
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------- state

// One command of a Run.
struct ClusterClient::Op {
  std::span<const std::string_view> args;
  Reply* reply = nullptr;
  uint16_t node = SlotMap::kNoNode;
  bool routed = false;  // routed by key: redirects are followed, timeouts counted
  bool asking = false;  // send ASKING first (after an ASK redirect)
  bool done = false;
  uint32_t redirects = 0;
};

// A reply a node owes, in the order the node sends them.
struct ClusterClient::InFlight {
  enum class Kind : uint8_t { kAuth, kAsking, kOp };
  Kind kind = Kind::kOp;
  Op* op = nullptr;  // nullptr: the Run it belonged to has ended; the reply is dropped
};

struct ClusterClient::Node {
  Node(HostPort a) : hp(std::move(a)), conn(hp.host, hp.port) {}

  HostPort hp;
  NodeConnection conn;
  std::deque<InFlight> inflight;  // sent; replies owed
  std::deque<Op*> to_send;        // routed here, not yet encoded (pipeline flow control)
  uint32_t live = 0;              // inflight kOp entries of the current Run
  uint64_t run_id = 0;            // the Run that open_error is about
  Status open_error;              // this node failed in that Run: fail its ops at once
};

ClusterClient::ClusterClient(ClusterOptions options) : options_(std::move(options)) {}

ClusterClient::~ClusterClient() = default;

uint16_t ClusterClient::NodeIndex(const HostPort& hp) {
  const std::string key = hp.ToString();
  auto it = node_index_.find(key);
  if (it != node_index_.end()) return it->second;
  if (nodes_.size() >= kMaxNodes) return SlotMap::kNoNode;
  const auto index = static_cast<uint16_t>(nodes_.size());
  nodes_.push_back(std::make_unique<Node>(hp));
  node_index_.emplace(key, index);
  return index;
}

std::string ClusterClient::NodeForSlot(uint16_t slot) const {
  if (slot >= kClusterSlots) return {};
  const uint16_t n = slot_map_.node(slot);
  return n == SlotMap::kNoNode ? std::string() : nodes_[n]->conn.address();
}

// ---------------------------------------------------------------- connect, refresh

Result<std::unique_ptr<ClusterClient>> ClusterClient::Connect(const ClusterOptions& options) {
  if (options.seeds.empty()) return Status::InvalidArgument("ClusterOptions.seeds is empty");
  if (options.timeout.count() <= 0) {
    return Status::InvalidArgument("ClusterOptions.timeout must be positive");
  }
  std::unique_ptr<ClusterClient> client(new ClusterClient(options));
  std::vector<uint16_t> seeds;
  for (size_t i = 0; i < options.seeds.size(); ++i) {
    auto hp = ParseHostPort(options.seeds[i]);
    if (!hp.ok()) return hp.status().WithContext("ClusterOptions.seeds[" + std::to_string(i) + "]");
    const uint16_t index = client->NodeIndex(*hp);
    if (index == SlotMap::kNoNode) return Status::InvalidArgument("ClusterOptions.seeds: too many seeds");
    if (std::find(seeds.begin(), seeds.end(), index) == seeds.end()) seeds.push_back(index);
  }
  const Status s = client->Refresh(seeds, Clock::now() + options.timeout);
  if (!s.ok()) return Status::IOError("no seed answered: " + s.message());
  return client;
}

std::vector<uint16_t> ClusterClient::RefreshCandidates() const {
  std::vector<uint16_t> nodes;
  for (int pass = 0; pass < 2; ++pass) {
    for (size_t i = 0; i < nodes_.size() && nodes.size() < kMaxRefreshFanout; ++i) {
      if (nodes_[i]->conn.connected() == (pass == 0)) nodes.push_back(static_cast<uint16_t>(i));
    }
  }
  return nodes;
}

Status ClusterClient::RefreshSlotMap() {
  const Status s = Refresh(RefreshCandidates(), Clock::now() + options_.timeout);
  if (s.ok()) ++counters_.slot_map_refreshes;
  return s;
}

Status ClusterClient::Refresh(const std::vector<uint16_t>& nodes, Clock::time_point deadline) {
  std::vector<Op> ops(nodes.size());
  std::vector<Reply> replies(nodes.size());
  std::vector<Status> parse_errors(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    ops[i].args = kClusterSlotsArgs;
    ops[i].node = nodes[i];
    ops[i].reply = &replies[i];
  }
  bool loaded = false;
  Run(ops, deadline, [&](Op& op) {
    const size_t i = static_cast<size_t>(&op - ops.data());
    if (!op.reply->ok() || op.reply->kind() == ReplyKind::kNone) return false;
    auto ranges = ParseClusterSlots(op.reply->reply_, nodes_[op.node]->hp);
    if (!ranges.ok()) {
      parse_errors[i] = ranges.status();
      return false;
    }
    InstallSlotMap(*ranges);
    loaded = true;
    return true;
  });
  if (loaded) return Status::OK();
  std::vector<std::string> tried, why;
  for (size_t i = 0; i < nodes.size(); ++i) {
    tried.push_back(nodes_[nodes[i]]->conn.address());
    const Status& s = !replies[i].ok() ? replies[i].status() : parse_errors[i];
    why.push_back(s.ok() ? tried.back() + ": no answer" : s.message());
  }
  return Status::IOError("CLUSTER SLOTS failed on every node tried (" + Join(tried, ", ") +
                         "): " + Join(why, "; "));
}

void ClusterClient::InstallSlotMap(const std::vector<SlotRange>& ranges) {
  slot_map_.Clear();
  for (const SlotRange& r : ranges) {
    slot_map_.SetRange(r.first, r.last, NodeIndex(r.master));
    for (const HostPort& replica : r.replicas) NodeIndex(replica);  // refresh candidates
  }
  refresh_needed_ = false;
}

// ---------------------------------------------------------------- execute

void ClusterClient::Execute(std::span<const Command> cmds, std::span<Reply> replies) {
  const Clock::time_point deadline = Clock::now() + options_.timeout;
  const size_t n = std::min(cmds.size(), replies.size());
  counters_.commands += n;
  if (refresh_needed_ && Refresh(RefreshCandidates(), deadline).ok()) {
    ++counters_.slot_map_refreshes;
  }
  std::vector<Op> ops(n);
  for (size_t i = 0; i < n; ++i) {
    Op& op = ops[i];
    op.args = cmds[i].args;
    op.reply = &replies[i];
    op.routed = true;
    op.node = slot_map_.node(KeySlot(cmds[i].key));
    replies[i].Reset();
    if (op.args.empty()) {
      op.done = true;
      replies[i].Set(nullptr, Status::InvalidArgument("command " + std::to_string(i) + " has no arguments"));
    }
  }
  Run(ops, deadline, [](Op&) { return false; });
}

template <typename Accept>
void ClusterClient::Run(std::span<Op> ops, Clock::time_point deadline, Accept accept) {
  ++run_id_;
  ops_pending_ = 0;
  for (Op& op : ops) ops_pending_ += !op.done;
  std::vector<Op*> finished;
  finished_ = &finished;
  for (Op& op : ops) {
    if (!op.done) Dispatch(op);
  }
  bool accepted = false;
  auto check_finished = [&] {
    for (Op* op : finished) accepted = accepted || accept(*op);
    finished.clear();
  };
  check_finished();

  std::vector<pollfd> fds;
  std::vector<Node*> polled;
  std::vector<redisReply*> got;
  while (ops_pending_ > 0 && !accepted) {
    fds.clear();
    polled.clear();
    for (auto& node : nodes_) {
      if (!node->conn.is_open()) continue;
      FillPipeline(*node);
      if (node->live == 0 && node->to_send.empty() && node->conn.queued_bytes() == 0) continue;
      fds.push_back(pollfd{node->conn.fd(), node->conn.PollEvents(), 0});
      polled.push_back(node.get());
    }
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (fds.empty() || left <= 0) break;
    const int ready = ::poll(fds.data(), fds.size(), static_cast<int>(std::min<long long>(left, 60'000)));
    if (ready < 0 && errno != EINTR) break;
    for (size_t i = 0; ready > 0 && i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      Node& node = *polled[i];
      got.clear();
      const Status s = node.conn.Service(fds[i].revents, &got);
      for (redisReply* r : got) {
        if (node.conn.is_open() || !s.ok()) {
          OnReply(node, r);
        } else {
          freeReplyObject(r);  // the node was failed by an earlier reply (AUTH)
        }
      }
      if (!s.ok()) FailNode(node, s, /*connection_error=*/true);
    }
    check_finished();
  }
  if (ops_pending_ > 0 && !accepted) TimeOut(ops);
  check_finished();
  // What is still owed belongs to no one now.
  for (auto& node : nodes_) {
    for (InFlight& e : node->inflight) e.op = nullptr;
    node->to_send.clear();
    node->live = 0;
  }
  finished_ = nullptr;
}

void ClusterClient::Dispatch(Op& op) {
  if (op.node == SlotMap::kNoNode || op.node >= nodes_.size()) {
    refresh_needed_ = true;
    FinishOp(op, nullptr, Status::IOError("no node serves the key's slot in the slot map"));
    return;
  }
  Node& node = *nodes_[op.node];
  if (node.run_id != run_id_) {  // first use in this Run
    node.run_id = run_id_;
    node.open_error = Status::OK();
    if (node.conn.is_open() && node.inflight.empty() && node.conn.PeerClosed()) node.conn.Close();
  }
  if (!node.open_error.ok()) {
    FinishOp(op, nullptr, node.open_error);
    return;
  }
  if (!node.conn.is_open()) {
    const Status s = OpenNode(node);
    if (!s.ok()) {
      FailNode(node, s, /*connection_error=*/true);
      FinishOp(op, nullptr, s);
      return;
    }
  }
  node.to_send.push_back(&op);
}

Status ClusterClient::OpenNode(Node& node) {
  node.inflight.clear();
  KVP_RETURN_IF_ERROR(node.conn.Open());
  if (options_.password.empty()) return Status::OK();
  std::vector<std::string_view> auth = {"AUTH"};
  if (!options_.user.empty()) auth.push_back(options_.user);
  auth.push_back(options_.password);
  KVP_RETURN_IF_ERROR(node.conn.Append(auth));
  node.inflight.push_back(InFlight{InFlight::Kind::kAuth, nullptr});
  return Status::OK();
}

void ClusterClient::FillPipeline(Node& node) {
  while (!node.to_send.empty() && node.conn.queued_bytes() < kPipelineBytes) {
    Op& op = *node.to_send.front();
    node.to_send.pop_front();
    if (op.asking) {
      if (node.conn.Append(kAskingArgs).ok()) {
        node.inflight.push_back(InFlight{InFlight::Kind::kAsking, &op});
      }
    }
    const Status s = node.conn.Append(op.args);
    if (!s.ok()) {
      FinishOp(op, nullptr, s);
      continue;
    }
    node.inflight.push_back(InFlight{InFlight::Kind::kOp, &op});
    ++node.live;
  }
}

void ClusterClient::OnReply(Node& node, redisReply* reply) {
  if (node.inflight.empty()) {
    freeReplyObject(reply);
    FailNode(node, Status::IOError(node.conn.address() + ": a reply to no command"), true);
    return;
  }
  const InFlight e = node.inflight.front();
  node.inflight.pop_front();
  const bool is_error = reply->type == REDIS_REPLY_ERROR;
  if (e.kind == InFlight::Kind::kAuth) {
    const Status s = Status::IOError(node.conn.address() + ": AUTH failed: " + std::string(Text(reply)));
    freeReplyObject(reply);
    if (is_error) FailNode(node, s, /*connection_error=*/true);
    return;
  }
  if (e.kind == InFlight::Kind::kAsking || e.op == nullptr) {
    freeReplyObject(reply);  // the command's own reply tells whether ASKING worked
    return;
  }
  --node.live;
  Op& op = *e.op;
  if (!is_error) {
    FinishOp(op, reply, Status::OK());
    return;
  }
  const std::string text(Text(reply));
  const std::string where = node.conn.address() + ": ";
  if (op.routed && ParseRedirect(text, node.hp).has_value()) {
    if (FollowRedirect(op, node, reply)) {
      freeReplyObject(reply);
      Dispatch(op);
      return;
    }
    FinishOp(op, reply, Status::IOError(where + text + " (not followed: " +
                                        std::to_string(op.redirects) + " redirects already)"));
    return;
  }
  FinishOp(op, reply, IsRetryLater(text) ? Status::Busy(where + text) : Status::IOError(where + text));
}

bool ClusterClient::FollowRedirect(Op& op, const Node& from, const redisReply* reply) {
  const auto redirect = ParseRedirect(Text(reply), from.hp);
  if (!redirect || op.redirects >= options_.max_redirects) return false;
  const uint16_t target = NodeIndex(redirect->target);
  if (target == SlotMap::kNoNode) return false;
  ++op.redirects;
  op.node = target;
  if (redirect->kind == Redirect::Kind::kMoved) {
    ++counters_.moved;
    slot_map_.Set(redirect->slot, target);
    refresh_needed_ = true;  // one slot moved: others likely did too
    op.asking = false;
  } else {
    ++counters_.asked;
    op.asking = true;
  }
  return true;
}

void ClusterClient::FinishOp(Op& op, redisReply* reply, Status status) {
  if (op.done) {
    if (reply != nullptr) freeReplyObject(reply);
    return;
  }
  op.reply->Set(reply, std::move(status));
  op.done = true;
  op.asking = false;
  --ops_pending_;
  if (finished_ != nullptr) finished_->push_back(&op);
}

void ClusterClient::FailNode(Node& node, const Status& status, bool connection_error) {
  // Copies first: FinishOp may not touch the node's queues while we walk them.
  std::vector<Op*> failed;
  for (const InFlight& e : node.inflight) {
    if (e.kind == InFlight::Kind::kOp && e.op != nullptr) failed.push_back(e.op);
  }
  failed.insert(failed.end(), node.to_send.begin(), node.to_send.end());
  node.inflight.clear();
  node.to_send.clear();
  node.live = 0;
  node.conn.Close();
  node.run_id = run_id_;
  node.open_error = status;
  if (connection_error) {
    ++counters_.connection_errors;
    refresh_needed_ = true;
  }
  for (Op* op : failed) FinishOp(*op, nullptr, status);
}

void ClusterClient::TimeOut(std::span<Op> ops) {
  const std::string after = "timeout after " + std::to_string(options_.timeout.count()) + " ms waiting for ";
  for (Op& op : ops) {
    if (op.done) continue;
    if (op.routed) ++counters_.timeouts;
    const std::string addr = op.node < nodes_.size() ? nodes_[op.node]->conn.address() : "?";
    FinishOp(op, nullptr, Status::IOError(after + addr));
  }
  // A node that still owes replies is out of step with us: drop its connection.
  for (auto& node : nodes_) {
    if (node->live > 0 || !node->to_send.empty()) {
      node->inflight.clear();
      node->to_send.clear();
      node->live = 0;
      node->conn.Close();
      refresh_needed_ = true;
    }
  }
}

}  // namespace kvpool::redis
