#include "tenants.h"

#include <algorithm>

namespace kvpool::daemon {

Tenant::Tenant(TenantOptions options, uint64_t chunk_bytes)
    : options_(std::move(options)),
      chunk_bytes_(chunk_bytes),
      salt_(Namespace::Make(0x6b76706f6f6c64ull /* "kvpoold" */, options_.name)) {}

bool Tenant::Allows(const ipc::PeerCred& peer) const {
  const auto& u = options_.uids;
  const auto& g = options_.gids;
  return std::find(u.begin(), u.end(), peer.uid) != u.end() || std::find(g.begin(), g.end(), peer.gid) != g.end();
}

std::vector<ChunkKey> Tenant::PoolKeys(std::span<const ChunkKey> keys) const {
  std::vector<ChunkKey> out(keys.begin(), keys.end());
  if (options_.name == "default") return out;
  for (ChunkKey& k : out) k = NextChunkKey(salt_, k, {});
  return out;
}

bool Tenant::Present(Pool& pool, const ChunkKey& key) { return pool.Lookup(std::span<const ChunkKey>(&key, 1)) == 1; }

void Tenant::ChargeLocked(const ChunkKey& key) {
  auto it = index_.find(key);
  if (it != index_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  lru_.push_front(key);
  index_[key] = lru_.begin();
}

void Tenant::ForgetLocked(const ChunkKey& key) {
  auto it = index_.find(key);
  if (it == index_.end()) return;
  lru_.erase(it->second);
  index_.erase(it);
}

void Tenant::ReconcileLocked(Pool& pool) {
  for (auto it = lru_.begin(); it != lru_.end();) {
    if (pending_.count(*it) || Present(pool, *it)) {
      ++it;
      continue;
    }
    index_.erase(*it);  // evicted by the pool
    it = lru_.erase(it);
  }
}

size_t Tenant::AdmitOffload(Pool& pool, std::span<const ChunkKey> keys, size_t first) {
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t quota = options_.quota_bytes;
  size_t end = keys.size();
  if (quota > 0) {  // the leading chunks whose new ones fit in the whole quota
    const uint64_t limit = quota / chunk_bytes_;
    uint64_t fresh = 0;
    for (end = first; end < keys.size(); ++end) {
      const bool is_new = !index_.count(keys[end]) && !Present(pool, keys[end]);
      if (is_new && fresh == limit) break;
      fresh += is_new ? 1 : 0;
    }
    if (end < keys.size()) {
      counters_.quota_refused_chunks.fetch_add(keys.size() - end, std::memory_order_relaxed);
    }
  }
  // Later chunks first, so the prefix's head ends up the most recently used.
  for (size_t i = end; i-- > first;) {
    ChargeLocked(keys[i]);
    ++pending_[keys[i]];
  }
  if (quota == 0 || index_.size() * chunk_bytes_ <= quota) return end;
  ReconcileLocked(pool);
  // Make room from the least recently used end, never with this offload's chunks.
  std::unordered_map<ChunkKey, bool, ChunkKeyHash> mine;
  for (size_t i = first; i < end; ++i) mine[keys[i]] = true;
  while (!lru_.empty() && index_.size() * chunk_bytes_ > quota && !mine.count(lru_.back())) {
    ChunkKey victim = lru_.back();
    ForgetLocked(victim);
    if (pool.Remove(std::span<const ChunkKey>(&victim, 1)) > 0) {
      counters_.quota_evicted_chunks.fetch_add(1, std::memory_order_relaxed);
    }
  }
  return end;
}

void Tenant::SettleOffload(Pool& pool, std::span<const ChunkKey> keys, size_t first, size_t end) {
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = first; i < end && i < keys.size(); ++i) {
    auto p = pending_.find(keys[i]);
    if (p != pending_.end() && --p->second == 0) pending_.erase(p);
    if (!pending_.count(keys[i]) && !Present(pool, keys[i])) ForgetLocked(keys[i]);
  }
}

void Tenant::Touch(std::span<const ChunkKey> keys) {
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = keys.size(); i-- > 0;) ChargeLocked(keys[i]);
}

void Tenant::Forget(std::span<const ChunkKey> keys) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const ChunkKey& k : keys) ForgetLocked(k);
}

nlohmann::json Tenant::StatsJson(Pool& pool) {
  uint64_t chunks;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ReconcileLocked(pool);
    chunks = index_.size();
  }
  const TenantCounters& c = counters_;
  return {
      {"name", options_.name},
      {"uids", options_.uids},
      {"gids", options_.gids},
      {"quota_bytes", options_.quota_bytes},
      {"used_bytes", chunks * chunk_bytes_},
      {"chunks", chunks},
      {"clients", c.clients.load()},
      {"connects", c.connects.load()},
      {"refused", c.refused.load()},
      {"lookups", c.lookups.load()},
      {"hit_chunks", c.hit_chunks.load()},
      {"retrieved_chunks", c.retrieved_chunks.load()},
      {"retrieved_bytes", c.retrieved_bytes.load()},
      {"offloaded_chunks", c.offloaded_chunks.load()},
      {"offloaded_bytes", c.offloaded_bytes.load()},
      {"quota_evicted_chunks", c.quota_evicted_chunks.load()},
      {"quota_refused_chunks", c.quota_refused_chunks.load()},
      {"bad_requests", c.bad_requests.load()},
  };
}

TenantRegistry::TenantRegistry(const std::vector<TenantOptions>& tenants, uint64_t chunk_bytes) {
  for (const TenantOptions& t : tenants) tenants_.push_back(std::make_unique<Tenant>(t, chunk_bytes));
}

Result<Tenant*> TenantRegistry::Authorize(const std::string& name, const ipc::PeerCred& peer) {
  for (auto& t : tenants_) {
    if (t->name() != name) continue;
    if (t->Allows(peer)) return t.get();
    t->counters().refused.fetch_add(1, std::memory_order_relaxed);
    return Status::InvalidArgument("uid " + std::to_string(peer.uid) + " (gid " + std::to_string(peer.gid) +
                                   ") is not allowed as tenant '" + name + "'");
  }
  return Status::NotFound("no tenant '" + name + "' is configured");
}

std::vector<Tenant*> TenantRegistry::All() {
  std::vector<Tenant*> out;
  for (auto& t : tenants_) out.push_back(t.get());
  return out;
}

}  // namespace kvpool::daemon
