// The kvpool systems of the long-context bench: the unified pool, and the
// same devices used as serialized tiers (the passthrough-only ablation).
#include <algorithm>

#include "core/pool_impl.h"
#include "kv_system.h"
#include "util/clock.h"

namespace kvpool::cli {
namespace {

Result<double> OffloadAndWait(Pool& pool, std::span<const ChunkKey> keys,
                              const ConstKvBuffer& source) {
  Clock::time_point t = Clock::now();
  auto h = pool.Offload(keys, source);
  if (!h.ok()) return h.status();
  auto n = h->Wait();
  if (!n.ok()) return n.status();
  return SecondsSince(t);
}

// Whole chunks `tier` takes before any of its devices passes the high
// watermark, that is without evicting anything.
size_t ChunksThatFit(const Pool& tier) {
  const PoolOptions& o = tier.options();
  uint64_t free = 0;
  for (const DeviceStats& d : tier.Stats().devices) {
    const auto limit = static_cast<uint64_t>(double(d.capacity_bytes) * o.high_watermark);
    free += limit > d.used_bytes ? limit - d.used_bytes : 0;
  }
  return static_cast<size_t>(free / (uint64_t{o.shape.layers} * o.shape.SegmentPayloadBytes()));
}

// Retrieves chunks [destination.first_chunk, present) and records when each
// layer became usable, relative to `start`.
Result<size_t> RetrieveTimed(Pool& pool, std::span<const ChunkKey> keys,
                             const KvBuffer& destination, Clock::time_point start,
                             std::vector<double>* layer_ready) {
  auto h = pool.Retrieve(keys, destination,
                         [&](uint32_t l, size_t) { (*layer_ready)[l] = SecondsSince(start); });
  if (!h.ok()) return h.status();
  return h->Wait();
}

std::vector<DeviceWork> WorkOf(const Pool& pool) {
  std::vector<DeviceWork> out;
  for (const DeviceStats& d : pool.Stats().devices) {
    out.push_back({d.name, d.kind, d.bytes_read, d.busy_seconds});
  }
  return out;
}

class PoolSystem final : public KvSystem {
 public:
  PoolSystem(std::string name, std::unique_ptr<Pool> pool)
      : name_(std::move(name)), pool_(std::move(pool)) {}

  std::string name() const override { return name_; }
  Result<double> Store(std::span<const ChunkKey> keys, const ConstKvBuffer& src) override {
    return OffloadAndWait(*pool_, keys, src);
  }
  Result<LoadResult> Load(std::span<const ChunkKey> keys, const KvBuffer& dst) override {
    LoadResult r;
    r.layer_ready.assign(pool_->options().shape.layers, 0);
    Clock::time_point start = Clock::now();
    auto n = RetrieveTimed(*pool_, keys, dst, start, &r.layer_ready);
    r.seconds = SecondsSince(start);
    if (!n.ok()) return n.status();
    r.chunks = *n;
    return r;
  }
  void MakeCold() override {
    if (auto* impl = dynamic_cast<PoolImpl*>(pool_.get())) impl->DropCaches();
  }
  std::vector<DeviceWork> Work() const override { return WorkOf(*pool_); }

 private:
  std::string name_;
  std::unique_ptr<Pool> pool_;
};

class TieredSystem final : public KvSystem {
 public:
  TieredSystem(std::string name, std::vector<std::unique_ptr<Pool>> tiers)
      : name_(std::move(name)), tiers_(std::move(tiers)) {}

  std::string name() const override { return name_; }

  // Every tier stores what fits; a tier above the last keeps the head of
  // the document, also when it is stored a window at a time (chunks
  // [src.first_chunk, keys.size())): such a tier takes only chunks that
  // extend the prefix it holds, and only as many as fit without evicting.
  // (Chunks after a gap are unreachable by a prefix lookup, and making
  // room for them would evict the head's tail.)
  Result<double> Store(std::span<const ChunkKey> keys, const ConstKvBuffer& src) override {
    const size_t first = src.first_chunk;
    double total = 0;
    for (size_t i = 0; i < tiers_.size(); ++i) {
      Pool& tier = *tiers_[i];
      size_t end = keys.size();
      if (i + 1 < tiers_.size()) {
        if (tier.Lookup(keys.first(first)) < first) continue;
        end = std::min(end, first + ChunksThatFit(tier));
        if (end <= first) continue;
      }
      auto s = OffloadAndWait(tier, keys.first(end), src);
      if (!s.ok() && s.status().code() != StatusCode::kNoSpace) return s.status();
      if (s.ok()) total += *s;
    }
    return total;
  }

  // Tier after tier: each reads the chunks the previous ones did not have.
  Result<LoadResult> Load(std::span<const ChunkKey> keys, const KvBuffer& dst) override {
    LoadResult r;
    uint32_t layers = tiers_.front()->options().shape.layers;
    r.layer_ready.assign(layers, 0);
    Clock::time_point start = Clock::now();
    size_t have = dst.first_chunk;
    for (auto& t : tiers_) {
      if (have == keys.size()) break;
      KvBuffer rest = dst;  // the same memory, addressed from chunk `have`
      for (std::byte*& base : rest.layer_base) base += (have - dst.first_chunk) * dst.chunk_stride;
      rest.first_chunk = have;
      std::vector<double> ready(layers, 0);
      auto n = RetrieveTimed(*t, keys, rest, start, &ready);
      if (!n.ok()) return n.status();
      if (*n > have) r.layer_ready = ready;  // the last tier that delivered decides
      have = std::max(have, *n);
    }
    r.seconds = SecondsSince(start);
    for (double& x : r.layer_ready) x = std::max(x, 0.0);
    r.chunks = have;
    return r;
  }

  void MakeCold() override {
    for (auto& t : tiers_) {
      if (auto* impl = dynamic_cast<PoolImpl*>(t.get())) impl->DropCaches();
    }
  }

  std::vector<DeviceWork> Work() const override {
    std::vector<DeviceWork> out;
    for (const auto& t : tiers_) {
      for (DeviceWork& w : WorkOf(*t)) out.push_back(std::move(w));
    }
    return out;
  }

 private:
  std::string name_;
  std::vector<std::unique_ptr<Pool>> tiers_;
};

}  // namespace

Result<std::unique_ptr<KvSystem>> NewPoolSystem(std::string name, const PoolOptions& options) {
  auto pool = Pool::Open(options);
  if (!pool.ok()) return pool.status().WithContext(name);
  return std::unique_ptr<KvSystem>(new PoolSystem(std::move(name), std::move(pool).value()));
}

Result<std::unique_ptr<KvSystem>> NewTieredSystem(std::string name,
                                                  const std::vector<PoolOptions>& tiers) {
  std::vector<std::unique_ptr<Pool>> pools;
  for (const PoolOptions& o : tiers) {
    auto pool = Pool::Open(o);
    if (!pool.ok()) return pool.status().WithContext(name);
    pools.push_back(std::move(pool).value());
  }
  return std::unique_ptr<KvSystem>(new TieredSystem(std::move(name), std::move(pools)));
}

}  // namespace kvpool::cli
