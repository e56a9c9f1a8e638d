// The tenants of kvpoold: who may connect as which tenant, how a tenant's
// keys are kept apart from every other tenant's, and the ledger of its
// chunks that holds it to its byte quota.
#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include <kvpool/keys.h>
#include <kvpool/pool.h>

#include "daemon_options.h"
#include "ipc/unix_socket.h"

namespace kvpool::daemon {

struct TenantCounters {
  std::atomic<uint64_t> clients{0};        // connected now
  std::atomic<uint64_t> connects{0};
  std::atomic<uint64_t> refused{0};        // connections refused for credentials
  std::atomic<uint64_t> lookups{0};
  std::atomic<uint64_t> hit_chunks{0};
  std::atomic<uint64_t> retrieved_chunks{0};
  std::atomic<uint64_t> retrieved_bytes{0};
  std::atomic<uint64_t> offloaded_chunks{0};
  std::atomic<uint64_t> offloaded_bytes{0};
  std::atomic<uint64_t> quota_evicted_chunks{0};  // removed to keep within the quota
  std::atomic<uint64_t> quota_refused_chunks{0};  // not stored: larger than the quota
  std::atomic<uint64_t> bad_requests{0};
};

class Tenant {
 public:
  Tenant(TenantOptions options, uint64_t chunk_bytes);

  const TenantOptions& options() const { return options_; }
  const std::string& name() const { return options_.name; }
  bool Allows(const ipc::PeerCred& peer) const;

  // The pool's key for a client's key. The "default" tenant's keys are the
  // client's own (so an in-process pool and the daemon share a layout);
  // every other tenant's are hashed with its name: no tenant can name
  // another's chunks.
  std::vector<ChunkKey> PoolKeys(std::span<const ChunkKey> keys) const;

  // Offload of pool keys [first, n): how many of them the quota lets through
  // (a prefix), after removing the tenant's least recently used chunks from
  // `pool` to make room. Charges the ones that are new.
  size_t AdmitOffload(Pool& pool, std::span<const ChunkKey> keys, size_t first);
  // After an offload admitted with AdmitOffload(keys, first) == end: drops
  // the charges of chunks that did not get stored. Called once per admission.
  void SettleOffload(Pool& pool, std::span<const ChunkKey> keys, size_t first, size_t end);
  // Marks hit chunks as recently used (a chunk recovered at open is charged here).
  void Touch(std::span<const ChunkKey> keys);
  void Forget(std::span<const ChunkKey> keys);

  TenantCounters& counters() { return counters_; }
  // Usage, quota and counters; reconciles the ledger with `pool` first.
  nlohmann::json StatsJson(Pool& pool);

 private:
  using Lru = std::list<ChunkKey>;  // front = most recently used

  void ChargeLocked(const ChunkKey& key);
  void ForgetLocked(const ChunkKey& key);
  void ReconcileLocked(Pool& pool);
  static bool Present(Pool& pool, const ChunkKey& key);

  const TenantOptions options_;
  const uint64_t chunk_bytes_;
  const Namespace salt_;
  TenantCounters counters_;
  std::mutex mu_;
  Lru lru_;                                                         // guarded by mu_
  std::unordered_map<ChunkKey, Lru::iterator, ChunkKeyHash> index_;  // guarded by mu_
  // Chunks charged by offloads still in flight (not yet visible): never
  // reconciled away. Key -> offloads holding it. Guarded by mu_.
  std::unordered_map<ChunkKey, uint32_t, ChunkKeyHash> pending_;
};

class TenantRegistry {
 public:
  TenantRegistry(const std::vector<TenantOptions>& tenants, uint64_t chunk_bytes);
  // The tenant `name`, when `peer` may act as it. NotFound for an unknown
  // name; InvalidArgument naming the uid when the peer is not allowed.
  Result<Tenant*> Authorize(const std::string& name, const ipc::PeerCred& peer);
  std::vector<Tenant*> All();

 private:
  std::vector<std::unique_ptr<Tenant>> tenants_;
};

}  // namespace kvpool::daemon
