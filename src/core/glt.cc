#include "core/glt.h"

namespace kvpool {

ChunkRecord::ChunkRecord(const ChunkKey& k, const ChunkKey& p, uint32_t n, SlotReleaser* releaser)
    : key(k), parent(p), layers(n), releaser_(releaser), segments_(new SegmentLoc[n]) {}

ChunkRecord::~ChunkRecord() {
  if (placed_ > 0 && releaser_ != nullptr) releaser_->ReleaseSegments(segments_.get(), placed_);
}

ChunkRef Glt::Find(const ChunkKey& key) const {
  Shard& s = ShardOf(key);
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.map.find(key);
  return it == s.map.end() ? nullptr : it->second;
}

bool Glt::InsertIfAbsent(const ChunkRef& record) {
  Shard& s = ShardOf(record->key);
  std::lock_guard<std::mutex> lock(s.mu);
  return s.map.emplace(record->key, record).second;
}

ChunkRef Glt::Erase(const ChunkKey& key, const ChunkRecord* expected) {
  ChunkRef out;
  Shard& s = ShardOf(key);
  {
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = s.map.find(key);
    if (it == s.map.end()) return nullptr;
    if (expected != nullptr && it->second.get() != expected) return nullptr;
    out = std::move(it->second);
    s.map.erase(it);
  }
  return out;  // dropped by the caller, outside the shard lock
}

void Glt::ForEach(const std::function<void(const ChunkRef&)>& fn) const {
  scans_.fetch_add(1, std::memory_order_relaxed);
  for (Shard& s : shards_) {
    std::lock_guard<std::mutex> lock(s.mu);
    for (const auto& [key, rec] : s.map) fn(rec);
  }
}

void Glt::Clear() {
  for (Shard& s : shards_) {
    std::unordered_map<ChunkKey, ChunkRef, ChunkKeyHash> doomed;
    {
      std::lock_guard<std::mutex> lock(s.mu);
      doomed.swap(s.map);
    }
  }
}

size_t Glt::size() const {
  size_t n = 0;
  for (Shard& s : shards_) {
    std::lock_guard<std::mutex> lock(s.mu);
    n += s.map.size();
  }
  return n;
}

uint64_t Glt::MemoryBytes(uint32_t layers) const {
  // Per chunk: a hash node (key, shared_ptr, next pointer, cached hash), one
  // bucket pointer, the record with its shared_ptr control block, and the
  // segment array.
  constexpr uint64_t kNode = sizeof(ChunkKey) + sizeof(ChunkRef) + 2 * sizeof(void*);
  constexpr uint64_t kBucket = sizeof(void*);
  constexpr uint64_t kRecord = sizeof(ChunkRecord) + 16;
  uint64_t per_chunk = kNode + kBucket + kRecord + uint64_t{layers} * sizeof(SegmentLoc);
  return per_chunk * size();
}

}  // namespace kvpool
