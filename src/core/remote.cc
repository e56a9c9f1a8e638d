// The pool's side of the remote tier (tier/remote_tier.h, docs/remote.md):
// chunks found there on a local miss become remote-only records, whose
// segments are read from the remote device and verified against the
// checksums of the chunk record that published them. Remote copies of
// chunks stored here are written by offloads (core/offload.cc).
#include <algorithm>

#include "core/pool_impl.h"

namespace kvpool {

std::vector<uint32_t> PoolImpl::AllocateRemoteSlots(uint32_t n) {
  std::lock_guard<std::mutex> lock(place_mu_);
  SlotAllocator& slots = runners_[remote_]->slots();
  if (slots.free_slots() < n) {
    std::vector<uint64_t> want(runners_.size(), 0);
    want[remote_] = n - slots.free_slots();
    EvictLru(std::move(want), 0);
  }
  std::vector<uint32_t> out;
  slots.Allocate(std::min(n, slots.free_slots()), &out);
  return out;
}

void PoolImpl::AdoptRemote(std::span<const ChunkKey> keys, size_t start,
                           std::vector<ChunkRef>* out) {
  const uint32_t layers = this->layers();
  const ChunkKey parent = start == 0 ? ChunkKey{} : keys[start - 1];
  counters_.remote_lookups.fetch_add(1, std::memory_order_relaxed);
  std::vector<RemoteChunk> found = remote_tier_->FindPrefix(keys.subspan(start), parent, layers);
  if (found.empty()) return;
  std::vector<uint32_t> slots =
      AllocateRemoteSlots(static_cast<uint32_t>(std::min<size_t>(found.size() * layers, UINT32_MAX)));
  const size_t fit = slots.size() / layers;
  size_t used = 0;
  size_t adopted = 0;
  for (size_t j = 0; j < fit; ++j) {
    const RemoteChunk& rc = found[j];
    auto rec = std::make_shared<ChunkRecord>(rc.key, rc.parent, layers, this);
    for (uint32_t l = 0; l < layers; ++l) {
      rec->segment(l) = SegmentLoc{slots[used + l], remote_, 0, rc.checksums[l]};
    }
    rec->set_placed(layers);
    used += layers;
    // Claimed by a local offload (or another adoption) meanwhile: ours goes,
    // freeing its slots, and the prefix ends here.
    if (!ClaimChunk(rec)) break;
    if (!PublishChunk(rec)) break;
    out->push_back(std::move(rec));
    ++adopted;
  }
  for (size_t i = used; i < slots.size(); ++i) runners_[remote_]->slots().Free(slots[i]);
  counters_.remote_hit_chunks.fetch_add(adopted, std::memory_order_relaxed);
}

void PoolImpl::InvalidateRemote(const ChunkKey& key, const Status& why) {
  if (why.code() != StatusCode::kNotFound && why.code() != StatusCode::kCorruption) return;
  counters_.remote_invalidated_chunks.fetch_add(1, std::memory_order_relaxed);
  remote_tier_->Invalidate(key);
}

}  // namespace kvpool
