// DRAM copies of hot chunks (copies mode): allocation over the cache
// devices, and what happens when a copy's writes finish or a copy fails.
// The policy that decides which chunks have copies is core/hot_set.h.
#include "core/placement.h"
#include "core/pool_impl.h"

namespace kvpool {

std::vector<CopyRef> PoolImpl::AllocateCopies(std::span<const ChunkKey> keys) {
  std::vector<CopyRef> out;
  size_t n = keys.size();
  if (!hot_ || n == 0) return out;
  {
    std::vector<CopyRef> dropped = hot_->MakeRoom(n);
    counters_.copies_dropped.fetch_add(dropped.size(), std::memory_order_relaxed);
  }  // released here: their slots are free unless a read still holds them
  const uint32_t layers = this->layers();
  std::lock_guard<std::mutex> lock(place_mu_);
  std::vector<double> bandwidth;
  std::vector<uint64_t> room;
  uint64_t total_room = 0;
  for (auto& r : runners_) {
    bool eligible = is_cache_[r->id()] && r->in_placement();
    bandwidth.push_back(eligible ? r->bandwidth_gibps() : 0);
    room.push_back(eligible ? r->slots().free_slots() : 0);
    if (bandwidth.back() > 0) total_room += room.back();
  }
  n = std::min<size_t>(n, total_room / layers);
  if (n == 0) return out;
  // Layer by layer, so that every layer of the copied chunks is spread over
  // the DRAM regions in proportion to their bandwidth.
  std::vector<uint64_t> counts = PlaceCounts(bandwidth, room, uint64_t{n} * layers);
  std::vector<uint16_t> order = InterleaveCounts(counts);
  std::vector<std::vector<uint32_t>> slots(runners_.size());
  for (size_t d = 0; d < runners_.size(); ++d) {
    runners_[d]->slots().Allocate(static_cast<uint32_t>(counts[d]), &slots[d]);
  }
  std::vector<size_t> cursor(runners_.size(), 0);
  for (size_t j = 0; j < n; ++j) out.push_back(std::make_shared<CopySet>(layers, this));
  for (uint32_t l = 0; l < layers; ++l) {
    for (size_t j = 0; j < n; ++j) {
      uint16_t d = order[l * n + j];
      out[j]->segment(l) = {slots[d][cursor[d]++], d, 0, 0};
    }
  }
  for (size_t j = 0; j < n; ++j) {
    out[j]->set_placed(layers);
    out[j]->writes_left.store(layers, std::memory_order_relaxed);
    if (CopyRef old = hot_->AttachCopy(keys[j], out[j])) {
      counters_.copies_dropped.fetch_add(1, std::memory_order_relaxed);
    }
  }
  // A chunk erased meanwhile must not keep the copy just attached: its
  // erase may have forgotten the key before the attach, and then nothing
  // would ever drop the copy or free its slots. Checked after the attach,
  // so that the erase either comes after it (and forgets the copy itself)
  // or is seen here.
  for (size_t j = 0; j < n; ++j) {
    if (!glt_.Find(keys[j])) DropCopy(keys[j], out[j].get());
  }
  return out;
}

void PoolImpl::FinishCopy(const ChunkKey& key, const CopyRef& copy) {
  if (copy->write_failed.load(std::memory_order_acquire)) {
    DropCopy(key, copy.get());
    return;
  }
  copy->ready.store(true, std::memory_order_release);
}

void PoolImpl::DropCopy(const ChunkKey& key, const CopySet* copy) {
  if (!hot_) return;
  if (CopyRef dropped = hot_->DropCopy(key, copy)) {
    counters_.copies_dropped.fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace kvpool
