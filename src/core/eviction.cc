// Eviction of home capacity: least-recently-used prefixes lose their tail
// chunks first, and only when a home device is full (above its high
// watermark, or short of room for an offload). DRAM copies are not evicted
// here: the hot set (core/hot_set.h) drops them, and dropping a copy never
// loses a chunk.
//
// Only leaves (ready chunks that no record in the table names as parent,
// writing ones included) are candidates: a parent is touched whenever a
// child is, so evicting leaves in LRU order removes a cold prefix from its
// tail towards its head, never strands a child without its parent, and
// never takes the chunk an in-flight offload is extending. When a leaf
// goes, its parent may become a leaf and joins the candidates. Callers hold
// place_mu_.
#include <queue>

#include "core/pool_impl.h"

namespace kvpool {
namespace {

struct Candidate {
  uint64_t last_access;
  ChunkRef record;
  bool operator>(const Candidate& o) const { return last_access > o.last_access; }
};

using CandidateHeap =
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>>;

}  // namespace

void PoolImpl::EvictForRoom(uint64_t segments) {
  uint64_t room = 0;
  for (auto& r : runners_) {
    if (r->in_placement() && is_home(r->id())) room += r->slots().free_slots();
  }
  if (room >= segments) return;
  // In copies mode home devices fill up to their capacity (no watermarks);
  // evicting a little more than needed keeps the next offloads from
  // scanning the table again at once.
  uint64_t slack = 0;
  if (hot_) {
    for (auto& r : runners_) {
      if (is_home(r->id())) slack += r->slots().capacity() / 256;
    }
  }
  EvictLru(std::vector<uint64_t>(runners_.size(), 0), segments - room + slack);
}

void PoolImpl::EvictAboveWatermarks() {
  if (hot_) return;  // copies mode: home capacity is evicted only when full
  std::vector<uint64_t> want(runners_.size(), 0);
  bool any = false;
  for (size_t d = 0; d < runners_.size(); ++d) {
    if (!is_home(static_cast<uint16_t>(d))) continue;
    const SlotAllocator& s = runners_[d]->slots();
    double used = s.used_slots();
    if (used > options_.high_watermark * s.capacity()) {
      want[d] = static_cast<uint64_t>(used - options_.low_watermark * s.capacity());
      any = true;
    }
  }
  if (any) EvictLru(std::move(want), 0);
}

bool PoolImpl::EraseLeaf(const ChunkRef& rec) {
  ChunkRef erased;  // dropped after the lock: the last reference frees slots
  {
    // One hold for the check and the erase: ClaimChunk takes the same lock,
    // so a child claimed by a concurrent offload is either seen here (no
    // leaf) or comes after the parent is gone.
    std::lock_guard<std::mutex> lock(family_mu_);
    if (!IsLeafLocked(*rec)) return false;
    erased = glt_.Erase(rec->key, rec.get());
    if (!erased) return false;
    ready_chunks_.fetch_sub(1, std::memory_order_relaxed);
    if (!rec->parent.IsZero()) CountChildLocked(rec->parent, -1);
  }
  if (hot_) CopyRef copy = hot_->Forget(rec->key);
  return true;
}

uint64_t PoolImpl::EvictLru(std::vector<uint64_t> want, uint64_t anywhere) {
  CandidateHeap heap;
  {
    std::lock_guard<std::mutex> lock(family_mu_);
    glt_.ForEach([&](const ChunkRef& r) {
      if (IsLeafLocked(*r)) heap.push({r->last_access.load(std::memory_order_relaxed), r});
    });
  }
  auto satisfied = [&] {
    if (anywhere > 0) return false;
    for (uint64_t w : want) {
      if (w > 0) return false;
    }
    return true;
  };
  uint64_t evicted = 0;
  while (!heap.empty() && !satisfied()) {
    ChunkRef rec = heap.top().record;
    heap.pop();
    // `anywhere` asks for home room: a remote-only record frees none.
    const bool home_held = rec->segment(0).device != remote_;
    bool helps = anywhere > 0 && home_held;
    for (uint32_t l = 0; l < rec->layers && !helps; ++l) helps = want[rec->segment(l).device] > 0;
    if (!helps || !EraseLeaf(rec)) continue;
    ++evicted;
    for (uint32_t l = 0; l < rec->layers; ++l) {
      uint16_t d = rec->segment(l).device;
      if (want[d] > 0) --want[d];
      runners_[d]->counters().evicted_segments.fetch_add(1, std::memory_order_relaxed);
    }
    if (home_held) anywhere = anywhere > rec->layers ? anywhere - rec->layers : 0;
    if (ChunkRef parent = rec->parent.IsZero() ? nullptr : glt_.Find(rec->parent)) {
      std::lock_guard<std::mutex> lock(family_mu_);
      if (IsLeafLocked(*parent)) heap.push({parent->last_access.load(), parent});
    }
  }
  counters_.evicted_chunks.fetch_add(evicted, std::memory_order_relaxed);
  return evicted;
}

}  // namespace kvpool
