#include "tier/redis/redis_device.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "tier/redis/cluster_client.h"
#include "tier/redis/remote_format.h"
#include "tier/remote_tier.h"

namespace kvpool {
namespace {

constexpr uint32_t kProbeTtlSeconds = 120;
// Most chunk records one FindPrefix asks for (a 1M-token prompt in 256-token chunks).
constexpr size_t kMaxLookupKeys = 4096;

redis::ClusterOptions ClusterOptionsOf(const DeviceOptions& o) {
  redis::ClusterOptions c;
  c.seeds = o.nodes;
  c.user = o.user;
  c.password = o.password;
  c.timeout = std::chrono::milliseconds(o.timeout_ms);
  return c;
}

// Runs `commands`. Those whose node failed fast (connection refused or
// reset: a master that died, whose slots a replica may serve by now) are
// sent once more, after the client reloads its slot map, when the first
// pass took less than half the timeout: a call takes at most 1.5 x timeout.
void ExecuteWithRetry(redis::ClusterClient& client, std::span<const redis::Command> commands,
                      std::span<redis::Reply> replies, uint32_t timeout_ms) {
  const auto start = std::chrono::steady_clock::now();
  client.Execute(commands, replies);
  if (std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(timeout_ms) / 2) return;
  std::vector<size_t> again;
  for (size_t i = 0; i < commands.size(); ++i) {
    if (replies[i].kind() == redis::Reply::Kind::kNone && !replies[i].status().ok()) again.push_back(i);
  }
  if (again.empty()) return;
  std::vector<redis::Command> retry;
  for (size_t i : again) retry.push_back(commands[i]);
  std::vector<redis::Reply> retried(again.size());
  client.Execute(retry, retried);
  for (size_t j = 0; j < again.size(); ++j) replies[again[j]] = std::move(retried[j]);
}

// Key names of one pool namespace.
class KeyNames {
 public:
  KeyNames(const std::string& prefix, const ChunkKey& pool_id)
      : ns_(prefix + pool_id.ToHex() + ":") {
    std::random_device rd;
    nonce_ = std::to_string((uint64_t{rd()} << 32) | rd());
  }

  std::string Segment(const ChunkKey& chunk, uint32_t layer) const {
    return ns_ + "{" + chunk.ToHex() + "}:" + std::to_string(layer);
  }
  std::string Record(const ChunkKey& chunk) const { return ns_ + "{" + chunk.ToHex() + "}:r"; }
  std::string Probe(uint32_t slot) const { return ns_ + "probe:" + nonce_ + ":" + std::to_string(slot); }
  const std::string& ns() const { return ns_; }

 private:
  std::string ns_;
  std::string nonce_;
};

// One batch's commands and the strings they point into.
struct Batch {
  std::vector<std::string> keys;
  std::vector<std::string> values;
  std::vector<redis::Command> commands;
  std::string ttl;
};

class RedisIoQueue final : public IoQueue {
 public:
  RedisIoQueue(std::unique_ptr<redis::ClusterClient> client, const KeyNames& names,
               const DeviceOptions& options)
      : client_(std::move(client)), names_(names), options_(options) {}

  void Execute(std::span<SegmentIo* const> ops) override {
    const size_t group = std::max<size_t>(1, options_.queue_depth);
    for (size_t begin = 0; begin < ops.size(); begin += group) {
      ExecuteGroup(ops.subspan(begin, std::min(group, ops.size() - begin)));
    }
  }

 private:
  void ExecuteGroup(std::span<SegmentIo* const> ops) {
    Batch b;
    b.keys.reserve(ops.size());
    b.values.reserve(ops.size());
    for (SegmentIo* op : ops) AddCommand(*op, &b);
    // Views into keys/values are taken only once both vectors are complete.
    for (size_t i = 0; i < ops.size(); ++i) b.commands.push_back(MakeCommand(*ops[i], b, i));
    std::vector<redis::Reply> replies(ops.size());
    ExecuteWithRetry(*client_, b.commands, replies, options_.timeout_ms);
    for (size_t i = 0; i < ops.size(); ++i) Finish(*ops[i], replies[i]);
  }

  bool IsProbe(const SegmentIo& op) const { return op.tag.chunk.IsZero(); }

  void AddCommand(const SegmentIo& op, Batch* b) {
    if (IsProbe(op)) {
      b->keys.push_back(names_.Probe(op.slot));
    } else if (op.tag.layer == kRecordLayer) {
      b->keys.push_back(names_.Record(op.tag.chunk));
    } else {
      b->keys.push_back(names_.Segment(op.tag.chunk, op.tag.layer));
    }
    std::string value;
    if (op.kind == IoKind::kWrite) {
      const char* data = reinterpret_cast<const char*>(op.buffer);
      if (op.tag.layer == kRecordLayer && !IsProbe(op)) {
        value.assign(data, op.length);
      } else {
        value = redis::EncodeSegmentHeader(op.tag.chunk, op.tag.layer, op.length, op.checksum);
        value.append(data, op.length);
      }
    }
    b->values.push_back(std::move(value));
  }

  redis::Command MakeCommand(const SegmentIo& op, Batch& b, size_t i) {
    redis::Command c;
    c.key = b.keys[i];
    if (op.kind == IoKind::kRead) {
      c.args = {"GET", b.keys[i]};
      return c;
    }
    c.args = {"SET", b.keys[i], b.values[i]};
    const uint32_t ttl = IsProbe(op) ? kProbeTtlSeconds : options_.ttl_s;
    if (ttl > 0) {
      if (b.ttl.empty()) b.ttl = std::to_string(ttl);
      c.args.push_back("EX");
      c.args.push_back(IsProbe(op) ? std::string_view(probe_ttl_) : std::string_view(b.ttl));
    }
    return c;
  }

  void Finish(SegmentIo& op, const redis::Reply& reply) {
    const std::string where = "device '" + options_.name + "'";
    if (!reply.status().ok()) {
      op.status = reply.status().WithContext(where);
      return;
    }
    if (op.kind == IoKind::kWrite) {
      op.status = Status::OK();
      return;
    }
    if (reply.kind() == redis::Reply::Kind::kNil) {
      op.status = Status::NotFound(where + ": layer " + std::to_string(op.tag.layer) + " of chunk " +
                                   op.tag.chunk.ToHex() + " is not in the cluster (evicted or expired)");
      return;
    }
    if (reply.kind() != redis::Reply::Kind::kString) {
      op.status = Status::Corruption(where + ": GET answered with a non-string reply");
      return;
    }
    auto payload = redis::ParseSegmentValue(reply.str(), op.tag.chunk, op.tag.layer, op.length,
                                            op.checksum);
    if (!payload.ok()) {
      op.status = payload.status().WithContext(where + ", layer " + std::to_string(op.tag.layer) +
                                               " of chunk " + op.tag.chunk.ToHex());
      return;
    }
    std::memcpy(op.buffer, payload->data(), op.length);
    op.status = Status::OK();
  }

  std::unique_ptr<redis::ClusterClient> client_;
  const KeyNames& names_;
  const DeviceOptions& options_;
  const std::string probe_ttl_ = std::to_string(kProbeTtlSeconds);
};

class RedisDevice final : public Device, public RemoteTier {
 public:
  RedisDevice(DeviceOptions options, DeviceGeometry geometry, const ChunkKey& pool_id,
              std::unique_ptr<redis::ClusterClient> lookup)
      : Device(std::move(options), geometry),
        names_(options_.key_prefix, pool_id),
        lookup_(std::move(lookup)) {}

  Result<std::unique_ptr<IoQueue>> NewIoQueue() override {
    auto client = redis::ClusterClient::Connect(ClusterOptionsOf(options_));
    if (!client.ok()) return client.status().WithContext("device '" + name() + "'");
    return std::unique_ptr<IoQueue>(
        std::make_unique<RedisIoQueue>(std::move(client).value(), names_, options_));
  }

  bool retries_after_quarantine() const override { return true; }
  RemoteTier* remote_tier() override { return this; }

  std::vector<RemoteChunk> FindPrefix(std::span<const ChunkKey> keys, const ChunkKey& first_parent,
                                      uint32_t layers) override {
    keys = keys.first(std::min(keys.size(), kMaxLookupKeys));
    std::vector<std::string> names;
    names.reserve(keys.size());
    for (const ChunkKey& k : keys) names.push_back(names_.Record(k));
    std::vector<redis::Command> commands;
    for (const std::string& n : names) commands.push_back(redis::Command{{"GET", n}, n});
    std::vector<redis::Reply> replies(keys.size());
    {
      std::lock_guard<std::mutex> lock(lookup_mu_);
      ExecuteWithRetry(*lookup_, commands, replies, options_.timeout_ms);
    }
    std::vector<RemoteChunk> out;
    ChunkKey parent = first_parent;
    for (size_t i = 0; i < keys.size(); ++i) {
      if (!replies[i].status().ok() || replies[i].kind() != redis::Reply::Kind::kString) break;
      auto rec = redis::ParseChunkRecord(replies[i].str(), keys[i], layers,
                                         geometry().slot_payload_bytes);
      if (!rec.ok() || rec->parent != parent) break;
      parent = keys[i];
      out.push_back(std::move(rec).value());
    }
    return out;
  }

  void Invalidate(const ChunkKey& key) override {
    const std::string name = names_.Record(key);
    const redis::Command del{{"DEL", name}, name};
    redis::Reply reply;
    std::lock_guard<std::mutex> lock(lookup_mu_);
    lookup_->Execute(std::span(&del, 1), std::span(&reply, 1));
  }

  std::string ChunkRecordValue(const RemoteChunk& chunk, uint32_t segment_bytes) const override {
    return redis::EncodeChunkRecord(chunk, segment_bytes);
  }

  std::string Describe() const override {
    std::string seeds;
    for (const std::string& n : options_.nodes) seeds += (seeds.empty() ? "" : ",") + n;
    return "redis '" + name() + "' cluster " + seeds + " keys " + names_.ns() + "* timeout " +
           std::to_string(options_.timeout_ms) + " ms, indexes " +
           std::to_string(geometry().slot_count) + " segments";
  }

 private:
  KeyNames names_;
  std::mutex lookup_mu_;
  std::unique_ptr<redis::ClusterClient> lookup_;  // guarded by lookup_mu_
};

}  // namespace

Result<std::unique_ptr<Device>> OpenRedisDevice(const DeviceOptions& options,
                                                uint32_t segment_payload_bytes,
                                                const ChunkKey& pool_id) {
  KVP_ASSIGN_OR_RETURN(DeviceGeometry g, PayloadSlotGeometry(options, segment_payload_bytes));
  // A segment value holds exactly the payload, not the slot's rounded size.
  g.slot_payload_bytes = segment_payload_bytes;
  auto client = redis::ClusterClient::Connect(ClusterOptionsOf(options));
  if (!client.ok()) return client.status().WithContext("device '" + options.name + "'");
  return std::unique_ptr<Device>(
      std::make_unique<RedisDevice>(options, g, pool_id, std::move(client).value()));
}

}  // namespace kvpool
