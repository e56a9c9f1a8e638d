// Eviction: least-recently-used prefixes lose their tail chunks first.
//
// Only leaves (ready chunks with no resident child) are candidates: a parent
// is touched whenever a child is, so evicting leaves in LRU order removes a
// cold prefix from its tail towards its head, and never strands a child
// without its parent. When a leaf goes, its parent may become a leaf and
// joins the candidates. Callers hold place_mu_.
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

bool IsLeaf(const ChunkRecord& r) {
  return r.state.load(std::memory_order_acquire) == ChunkState::kReady &&
         r.resident_children.load(std::memory_order_relaxed) == 0;
}

}  // namespace

void PoolImpl::EvictForRoom(uint64_t segments) {
  uint64_t room = 0;
  for (auto& r : runners_) {
    if (r->in_placement()) room += r->slots().free_slots();
  }
  if (room >= segments) return;
  EvictLru(std::vector<uint64_t>(runners_.size(), 0), segments - room);
}

void PoolImpl::EvictAboveWatermarks() {
  std::vector<uint64_t> want(runners_.size(), 0);
  bool any = false;
  for (size_t d = 0; d < runners_.size(); ++d) {
    const SlotAllocator& s = runners_[d]->slots();
    double used = s.used_slots();
    if (used > options_.high_watermark * s.capacity()) {
      want[d] = static_cast<uint64_t>(used - options_.low_watermark * s.capacity());
      any = true;
    }
  }
  if (any) EvictLru(std::move(want), 0);
}

uint64_t PoolImpl::EvictLru(std::vector<uint64_t> want, uint64_t anywhere) {
  CandidateHeap heap;
  glt_.ForEach([&](const ChunkRef& r) {
    if (IsLeaf(*r)) heap.push({r->last_access.load(std::memory_order_relaxed), r});
  });
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
    if (!IsLeaf(*rec)) continue;
    bool helps = anywhere > 0;
    for (uint32_t l = 0; l < rec->layers && !helps; ++l) helps = want[rec->segment(l).device] > 0;
    if (!helps) continue;
    if (!EraseChunk(rec->key, rec.get())) continue;
    ++evicted;
    for (uint32_t l = 0; l < rec->layers; ++l) {
      uint16_t d = rec->segment(l).device;
      if (want[d] > 0) --want[d];
      runners_[d]->counters().evicted_segments.fetch_add(1, std::memory_order_relaxed);
    }
    anywhere = anywhere > rec->layers ? anywhere - rec->layers : 0;
    if (ChunkRef parent = rec->parent.IsZero() ? nullptr : glt_.Find(rec->parent)) {
      if (IsLeaf(*parent)) heap.push({parent->last_access.load(), parent});
    }
  }
  counters_.evicted_chunks.fetch_add(evicted, std::memory_order_relaxed);
  return evicted;
}

}  // namespace kvpool
