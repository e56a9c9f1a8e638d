// Rebuilds the GLT from the segments persistent devices found at open.
// A chunk is usable only when every one of its layers was found; partial
// chunks (some layers were in DRAM in partition mode, or a write was torn)
// give their slots back. When a layer was found twice, the newest sequence
// number wins. A whole chunk that no Lookup can reach (an ancestor is
// missing: evicted or removed before the restart, or torn) gives its slots
// back too, so no space is orphaned.
#include <unordered_map>

#include "core/pool_impl.h"
#include "util/log.h"

namespace kvpool {
namespace {

using Found = RecoveredPart;

struct ChunkParts {
  ChunkKey parent;
  uint64_t newest = 0;
  std::vector<Found> parts;
};

}  // namespace

ChunkRef PoolImpl::AdoptChunk(const ChunkKey& key, const ChunkKey& parent,
                              const std::vector<const RecoveredPart*>& by_layer) {
  auto rec = std::make_shared<ChunkRecord>(key, parent, layers(), this);
  for (uint32_t l = 0; l < layers(); ++l) {
    const RecoveredPart& f = *by_layer[l];
    if (!runners_[f.device]->slots().MarkUsed(f.segment.slot)) {
      rec->set_placed(l);  // frees the slots marked so far
      log::Warn("recovery: slot " + std::to_string(f.segment.slot) + " of device '" +
                runners_[f.device]->device().name() + "' claimed twice; chunk dropped");
      return nullptr;
    }
    rec->segment(l) = {f.segment.slot, f.device, 0, f.segment.checksum};
  }
  return rec;
}

void PoolImpl::Recover() {
  std::vector<std::pair<uint16_t, std::vector<RecoveredSegment>>> found;
  size_t segments = 0;
  for (auto& r : runners_) {
    if (!r->device().persistent()) continue;
    found.emplace_back(r->id(), r->device().TakeRecovered());
    segments += found.back().second.size();
  }
  std::unordered_map<ChunkKey, ChunkParts, ChunkKeyHash> chunks;
  chunks.reserve(segments / std::max<uint32_t>(1, layers()) + 1);
  uint64_t max_sequence = 0;
  for (auto& [device, list] : found) {
    for (RecoveredSegment& s : list) {
      ChunkParts& c = chunks[s.tag.chunk];
      c.parent = s.tag.parent;
      c.newest = std::max(c.newest, s.tag.sequence);
      max_sequence = std::max(max_sequence, s.tag.sequence);
      c.parts.push_back({device, s});
    }
  }
  const uint32_t layers = this->layers();
  size_t rebuilt = 0, dropped = 0;
  for (auto& [key, c] : chunks) {
    std::vector<const Found*> by_layer(layers, nullptr);
    for (const Found& f : c.parts) {
      if (f.segment.tag.layer >= layers || f.segment.length != segment_payload()) continue;
      const Found*& slot = by_layer[f.segment.tag.layer];
      if (slot == nullptr || slot->segment.tag.sequence < f.segment.tag.sequence) slot = &f;
    }
    bool complete = std::all_of(by_layer.begin(), by_layer.end(), [](auto* f) { return f; });
    auto rec = complete ? AdoptChunk(key, c.parent, by_layer) : nullptr;
    for (const Found& f : c.parts) {
      bool kept = rec && by_layer[f.segment.tag.layer] == &f;
      if (!kept) runners_[f.device]->device().ReleaseSlot(f.segment.slot);
    }
    if (!rec) {
      ++dropped;
      continue;
    }
    rec->set_placed(layers);
    rec->last_access.store(c.newest, std::memory_order_relaxed);
    rec->state.store(ChunkState::kReady, std::memory_order_relaxed);
    glt_.InsertIfAbsent(rec);
    ++rebuilt;
  }
  const size_t unreachable = ReclaimUnreachable();
  rebuilt -= unreachable;
  sequence_.store(max_sequence + 1);
  clock_.store(max_sequence + 1);
  counters_.recovered_chunks.store(rebuilt);
  counters_.unreachable_reclaimed_chunks.store(unreachable);
  if (rebuilt + dropped + unreachable > 0) {
    log::Info("recovered " + std::to_string(rebuilt) + " chunks, dropped " +
              std::to_string(dropped) + " incomplete and " + std::to_string(unreachable) +
              " unreachable ones");
  }
}

size_t PoolImpl::ReclaimUnreachable() {
  std::unordered_map<ChunkKey, ChunkRef, ChunkKeyHash> all;
  all.reserve(glt_.size());
  glt_.ForEach([&](const ChunkRef& r) { all.emplace(r->key, r); });
  enum : uint8_t { kUnknown, kVisiting, kReachable, kUnreachable };
  std::unordered_map<ChunkKey, uint8_t, ChunkKeyHash> mark;
  mark.reserve(all.size());
  std::vector<const ChunkRecord*> path;
  for (const auto& [key, rec] : all) {
    // Walk up to a first chunk or to a chunk already decided, then mark the path.
    const ChunkRecord* at = rec.get();
    uint8_t verdict = kUnknown;
    while (verdict == kUnknown) {
      uint8_t& m = mark[at->key];
      if (m == kReachable || m == kUnreachable) {
        verdict = m;
        break;
      }
      if (m == kVisiting) {  // a cycle: cannot be a prefix
        verdict = kUnreachable;
        break;
      }
      m = kVisiting;
      path.push_back(at);
      auto parent = at->parent.IsZero() ? all.end() : all.find(at->parent);
      if (at->parent.IsZero()) {
        verdict = kReachable;
      } else if (parent == all.end()) {
        verdict = kUnreachable;
      } else {
        at = parent->second.get();
      }
    }
    for (const ChunkRecord* p : path) mark[p->key] = verdict;
    path.clear();
  }
  size_t reclaimed = 0;
  std::lock_guard<std::mutex> lock(family_mu_);
  for (const auto& [key, rec] : all) {
    if (mark[key] == kReachable) {
      if (!rec->parent.IsZero()) CountChildLocked(rec->parent, +1);
      ready_chunks_.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    glt_.Erase(key, rec.get());  // its slots are freed when `all` goes
    ++reclaimed;
  }
  return reclaimed;
}

}  // namespace kvpool
