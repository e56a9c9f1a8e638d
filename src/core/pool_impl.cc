#include "core/pool_impl.h"

#include <algorithm>
#include <unordered_map>

#include "core/bandwidth_probe.h"
#include "core/placement.h"
#include "core/requests.h"
#include "util/log.h"

namespace kvpool {

PoolImpl::PoolImpl(PoolOptions options)
    : options_(std::move(options)), write_budget_(options_.max_pending_writes) {}

Result<std::unique_ptr<PoolImpl>> PoolImpl::Create(PoolOptions options,
                                                   std::vector<std::unique_ptr<Device>> devices) {
  KVP_RETURN_IF_ERROR(options.Validate());
  if (devices.size() != options.devices.size()) {
    return Status::InvalidArgument("devices: options describe " +
                                   std::to_string(options.devices.size()) + " devices, got " +
                                   std::to_string(devices.size()));
  }
  std::unique_ptr<PoolImpl> pool(new PoolImpl(std::move(options)));
  KVP_RETURN_IF_ERROR(pool->StartRunners(std::move(devices)));
  pool->Recover();
  KVP_RETURN_IF_ERROR(ProbeBandwidths(pool->runners_, pool->options_));
  return pool;
}

Status PoolImpl::StartRunners(std::vector<std::unique_ptr<Device>> devices) {
  for (size_t i = 0; i < devices.size(); ++i) {
    if (devices[i]->geometry().slot_payload_bytes < segment_payload()) {
      return Status::InvalidArgument("device '" + devices[i]->name() +
                                     "': slots are smaller than a segment");
    }
    auto r = DeviceRunner::Start(std::move(devices[i]), static_cast<uint16_t>(i));
    if (!r.ok()) return r.status();
    runners_.push_back(std::move(r).value());
  }
  return Status::OK();
}

PoolImpl::~PoolImpl() {
  Flush();  // waits for every request, reads included
  closing_.store(true);
  glt_.Clear();
  for (auto& r : runners_) {
    Status s = r->device().Checkpoint();
    if (!s.ok()) log::Warn("checkpoint at close: " + s.ToString());
  }
  runners_.clear();
}

void PoolImpl::RequestBegin() {
  std::lock_guard<std::mutex> lock(requests_mu_);
  ++active_requests_;
}

void PoolImpl::RequestEnd() {
  std::lock_guard<std::mutex> lock(requests_mu_);
  if (--active_requests_ == 0) requests_cv_.notify_all();
}

void PoolImpl::Flush() {
  std::unique_lock<std::mutex> lock(requests_mu_);
  requests_cv_.wait(lock, [&] { return active_requests_ == 0; });
}

std::vector<ChunkRef> PoolImpl::FindPrefix(std::span<const ChunkKey> keys) {
  std::vector<ChunkRef> out;
  for (const ChunkKey& key : keys) {
    ChunkRef rec = glt_.Find(key);
    if (!rec || rec->state.load(std::memory_order_acquire) != ChunkState::kReady) break;
    out.push_back(std::move(rec));
  }
  return out;
}

void PoolImpl::Touch(std::span<const ChunkRef> records) {
  uint64_t now = clock_.fetch_add(1, std::memory_order_relaxed);
  for (const ChunkRef& r : records) r->last_access.store(now, std::memory_order_relaxed);
}

size_t PoolImpl::Lookup(std::span<const ChunkKey> keys) {
  std::vector<ChunkRef> found = FindPrefix(keys);
  Touch(found);
  counters_.lookups.fetch_add(1, std::memory_order_relaxed);
  counters_.hit_chunks.fetch_add(found.size(), std::memory_order_relaxed);
  return found.size();
}

size_t PoolImpl::Remove(std::span<const ChunkKey> keys) {
  size_t n = 0;
  for (const ChunkKey& key : keys) n += EraseChunk(key, nullptr) ? 1 : 0;
  return n;
}

bool PoolImpl::PublishChunk(const ChunkRef& record) {
  std::lock_guard<std::mutex> lock(family_mu_);
  // Removed (or replaced) while it was written: it must neither appear nor
  // count under its parent, or the parent would never be a leaf again.
  if (glt_.Find(record->key).get() != record.get()) return false;
  record->last_access.store(clock_.fetch_add(1, std::memory_order_relaxed),
                            std::memory_order_relaxed);
  record->state.store(ChunkState::kReady, std::memory_order_release);
  if (record->parent.IsZero()) return true;
  if (ChunkRef parent = glt_.Find(record->parent)) {
    parent->resident_children.fetch_add(1, std::memory_order_relaxed);
  }
  return true;
}

bool PoolImpl::EraseChunk(const ChunkKey& key, const ChunkRecord* expected) {
  ChunkRef rec;  // dropped after the lock: the last reference frees slots
  std::lock_guard<std::mutex> lock(family_mu_);
  rec = glt_.Erase(key, expected);
  if (!rec) return false;
  bool was_ready = rec->state.load(std::memory_order_acquire) == ChunkState::kReady;
  if (was_ready && !rec->parent.IsZero()) {
    if (ChunkRef parent = glt_.Find(rec->parent)) {
      uint32_t c = parent->resident_children.load(std::memory_order_relaxed);
      while (c > 0 && !parent->resident_children.compare_exchange_weak(c, c - 1)) {
      }
    }
  }
  return true;
}

void PoolImpl::ReleaseSegments(const SegmentLoc* segments, uint32_t count) {
  for (uint32_t i = 0; i < count; ++i) {
    DeviceRunner& r = *runners_[segments[i].device];
    if (!closing_.load(std::memory_order_relaxed)) r.device().ReleaseSlot(segments[i].slot);
    r.slots().Free(segments[i].slot);
  }
}

PoolImpl::Placement PoolImpl::Place(uint64_t segments) {
  std::lock_guard<std::mutex> lock(place_mu_);
  EvictForRoom(segments);
  std::vector<double> bandwidth;
  std::vector<uint64_t> room;
  uint64_t total_room = 0;
  for (auto& r : runners_) {
    bool eligible = r->in_placement();
    bandwidth.push_back(eligible ? r->bandwidth_gibps() : 0);
    room.push_back(eligible ? r->slots().free_slots() : 0);
    total_room += room.back();
  }
  uint64_t want = std::min(segments, total_room / layers() * layers());
  std::vector<uint64_t> counts = PlaceCounts(bandwidth, room, want);
  Placement p;
  p.slots.resize(runners_.size());
  for (size_t d = 0; d < runners_.size(); ++d) {
    runners_[d]->slots().Allocate(static_cast<uint32_t>(counts[d]), &p.slots[d]);
  }
  p.device = InterleaveCounts(counts);
  EvictAboveWatermarks();
  return p;
}

void PoolImpl::DropCaches() {
  for (auto& r : runners_) r->device().DropCaches();
}

std::vector<std::string> PoolImpl::DescribeDevices() const {
  std::vector<std::string> out;
  for (const auto& r : runners_) out.push_back(r->device().Describe());
  return out;
}

PoolStats PoolImpl::Stats() const {
  PoolStats s;
  for (const auto& r : runners_) {
    const DeviceCounters& c = r->counters();
    DeviceStats d;
    d.name = r->device().name();
    d.kind = std::string(DeviceKindName(r->device().kind()));
    d.bandwidth_gibps = r->bandwidth_gibps();
    d.bandwidth_probed = r->bandwidth_probed();
    d.in_placement = r->in_placement();
    d.capacity_bytes = r->device().geometry().capacity_bytes;
    d.segments = r->slots().used_slots();
    d.used_bytes = d.segments * uint64_t{r->device().geometry().slot_payload_bytes};
    d.reads = c.reads.load();
    d.writes = c.writes.load();
    d.bytes_read = c.bytes_read.load();
    d.bytes_written = c.bytes_written.load();
    d.busy_seconds = r->busy_seconds();
    d.errors = c.errors.load();
    d.evicted_segments = c.evicted_segments.load();
    s.segments += d.segments;
    s.devices.push_back(std::move(d));
  }
  size_t ready = 0;
  glt_.ForEach([&](const ChunkRef& r) {
    if (r->state.load(std::memory_order_relaxed) == ChunkState::kReady) ++ready;
  });
  s.chunks = ready;
  s.glt_bytes = glt_.MemoryBytes(options_.shape.layers);
  size_t table_segments = glt_.size() * options_.shape.layers;
  s.glt_bytes_per_segment = table_segments ? double(s.glt_bytes) / double(table_segments) : 0;
  s.lookups = counters_.lookups.load();
  s.hit_chunks = counters_.hit_chunks.load();
  s.retrieved_chunks = counters_.retrieved_chunks.load();
  s.miss_chunks_on_error = counters_.miss_chunks_on_error.load();
  s.offloaded_chunks = counters_.offloaded_chunks.load();
  s.evicted_chunks = counters_.evicted_chunks.load();
  s.offload_rejected_chunks = counters_.offload_rejected_chunks.load();
  s.recovered_chunks = counters_.recovered_chunks.load();
  return s;
}

}  // namespace kvpool
