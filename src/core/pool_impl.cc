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
  pool->AssignRoles();
  pool->Recover();
  KVP_RETURN_IF_ERROR(ProbeBandwidths(pool->runners_, pool->options_, &pool->glt_));
  return pool;
}

Status PoolImpl::StartRunners(std::vector<std::unique_ptr<Device>> devices) {
  for (size_t i = 0; i < devices.size(); ++i) {
    if (devices[i]->geometry().slot_payload_bytes < segment_payload()) {
      return Status::InvalidArgument("device '" + devices[i]->name() +
                                     "': slots are smaller than a segment");
    }
    RunnerTuning tuning;
    tuning.max_write_delay = std::chrono::milliseconds(options_.max_write_delay_ms);
    auto r = DeviceRunner::Start(std::move(devices[i]), static_cast<uint16_t>(i), tuning);
    if (!r.ok()) return r.status();
    runners_.push_back(std::move(r).value());
  }
  return Status::OK();
}

void PoolImpl::AssignRoles() {
  bool any_home_beyond_dram = false;
  for (auto& r : runners_) {
    if (RemoteTier* t = r->device().remote_tier()) {
      remote_ = r->id();
      remote_tier_ = t;
      continue;
    }
    any_home_beyond_dram |= r->device().kind() != DeviceKind::kDram;
  }
  const bool copies = options_.placement == PlacementMode::kCopies && any_home_beyond_dram;
  uint64_t cache_slots = 0;
  for (auto& r : runners_) {
    bool cache = copies && r->device().kind() == DeviceKind::kDram;
    is_cache_.push_back(cache);
    if (cache) cache_slots += r->slots().capacity();
  }
  if (copies && cache_slots > 0) {
    hot_ = std::make_unique<HotSet>(cache_slots / layers(), options_.hot_probation_fraction);
  }
}

PoolImpl::~PoolImpl() {
  Flush();  // waits for every request, reads included
  closing_.store(true);
  hot_.reset();  // DRAM copies are not persisted
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

Status PoolImpl::ReprobeBandwidths() {
  Flush();
  return ProbeBandwidths(runners_, options_, &glt_, /*use_cache=*/false);
}

void PoolImpl::Flush() {
  std::unique_lock<std::mutex> lock(requests_mu_);
  requests_cv_.wait(lock, [&] { return active_requests_ == 0; });
}

std::vector<ChunkRef> PoolImpl::FindPrefix(std::span<const ChunkKey> keys) {
  std::vector<ChunkRef> out;
  for (const ChunkKey& key : keys) {
    ChunkRef rec = glt_.Find(key);
    if (!rec) break;
    // A chunk being written here is not asked for remotely either: its
    // local claim would refuse the remote record.
    if (rec->state.load(std::memory_order_acquire) != ChunkState::kReady) return out;
    out.push_back(std::move(rec));
  }
  if (remote_tier_ != nullptr && out.size() < keys.size() && runners_[remote_]->in_placement()) {
    AdoptRemote(keys, out.size(), &out);
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

size_t PoolImpl::FindChild(std::span<const ChunkKey> prefix,
                           std::span<const ChunkKey> candidates) {
  counters_.lookups.fetch_add(1, std::memory_order_relaxed);
  const ChunkKey parent = prefix.empty() ? ChunkKey{} : prefix.back();
  std::vector<ChunkRef> found;
  bool first_in_table = false;  // then the remote tier has nothing newer to give
  size_t i = 0;
  for (; i < candidates.size(); ++i) {
    ChunkRef rec = glt_.Find(candidates[i]);
    if (i == 0) first_in_table = rec != nullptr;
    if (rec && rec->parent == parent &&
        rec->state.load(std::memory_order_acquire) == ChunkState::kReady) {
      found.push_back(std::move(rec));
      break;
    }
  }
  if (found.empty() && !candidates.empty() && remote_tier_ != nullptr &&
      runners_[remote_]->in_placement() && !first_in_table) {
    std::vector<ChunkKey> chain(prefix.begin(), prefix.end());
    chain.push_back(candidates[0]);
    AdoptRemote(chain, prefix.size(), &found);
    i = 0;
  }
  if (found.empty()) return candidates.size();
  Touch(found);
  counters_.hit_chunks.fetch_add(1, std::memory_order_relaxed);
  return i;
}

size_t PoolImpl::Remove(std::span<const ChunkKey> keys) {
  size_t n = 0;
  for (const ChunkKey& key : keys) n += EraseChunk(key, nullptr) ? 1 : 0;
  return n;
}

bool PoolImpl::ClaimChunk(const ChunkRef& record) {
  std::lock_guard<std::mutex> lock(family_mu_);
  if (!glt_.InsertIfAbsent(record)) return false;
  if (!record->parent.IsZero()) CountChildLocked(record->parent, +1);
  return true;
}

bool PoolImpl::PublishChunk(const ChunkRef& record) {
  std::lock_guard<std::mutex> lock(family_mu_);
  // Removed (or replaced) while it was written: it must not appear.
  if (glt_.Find(record->key).get() != record.get()) return false;
  record->last_access.store(clock_.fetch_add(1, std::memory_order_relaxed),
                            std::memory_order_relaxed);
  record->state.store(ChunkState::kReady, std::memory_order_release);
  ready_chunks_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void PoolImpl::CountChildLocked(const ChunkKey& parent, int delta) {
  if (delta > 0) {
    ++children_[parent];
    return;
  }
  auto it = children_.find(parent);
  if (it == children_.end()) return;
  if (--it->second == 0) children_.erase(it);
}

bool PoolImpl::IsLeafLocked(const ChunkRecord& rec) const {
  return rec.state.load(std::memory_order_acquire) == ChunkState::kReady &&
         children_.find(rec.key) == children_.end();
}

bool PoolImpl::EraseChunk(const ChunkKey& key, const ChunkRecord* expected) {
  ChunkRef rec;   // dropped after the locks: the last reference frees slots
  CopyRef copy;
  {
    std::lock_guard<std::mutex> lock(family_mu_);
    rec = glt_.Erase(key, expected);
    if (!rec) return false;
    if (rec->state.load(std::memory_order_acquire) == ChunkState::kReady) {
      ready_chunks_.fetch_sub(1, std::memory_order_relaxed);
    }
    if (!rec->parent.IsZero()) CountChildLocked(rec->parent, -1);
  }
  if (hot_) copy = hot_->Forget(key);
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
    bool eligible = r->in_placement() && is_home(r->id());
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

Status PoolImpl::CheckpointDevices() {
  Status first;
  for (auto& r : runners_) {
    Status s = r->device().Checkpoint();
    if (!s.ok() && first.ok()) first = s.WithContext("device '" + r->device().name() + "'");
  }
  return first;
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
    d.role = is_cache_[r->id()] ? "cache" : r->id() == remote_ ? "remote" : "home";
    d.bandwidth_gibps = r->bandwidth_gibps();
    d.bandwidth_probed = r->bandwidth_probed();
    d.solo_gibps = r->solo_bandwidth_gibps();
    d.live_gibps = r->live_read_gibps();
    d.contention_group = r->contention_group();
    d.in_placement = r->in_placement();
    d.capacity_bytes = r->device().geometry().capacity_bytes;
    d.segments = r->slots().used_slots();
    d.used_bytes = d.segments * uint64_t{r->device().geometry().slot_payload_bytes};
    if (is_cache_[r->id()]) d.copy_segments = d.segments;
    d.reads = c.reads.load();
    d.writes = c.writes.load();
    d.bytes_read = c.bytes_read.load();
    d.bytes_written = c.bytes_written.load();
    d.busy_seconds = r->busy_seconds();
    d.errors = c.errors.load();
    d.evicted_segments = c.evicted_segments.load();
    d.queued_read_bytes = r->queued_read_bytes();
    d.in_flight_seconds = r->in_flight_seconds();
    d.mean_in_flight = d.busy_seconds > 0 ? d.in_flight_seconds / d.busy_seconds : 0;
    d.bounced_segments = c.bounced_segments.load();
    d.direct_alignment = uint32_t(r->device().direct_alignment());
    if (is_home(r->id())) s.segments += d.segments;
    s.devices.push_back(std::move(d));
  }
  // O(devices + shards): no walk over the table.
  s.chunks = ready_chunks_.load(std::memory_order_relaxed);
  const size_t records = glt_.size();
  s.glt_bytes = glt_.MemoryBytes(options_.shape.layers);
  {
    // The child counts: one hash node (key, count, next, cached hash) and a bucket each.
    std::lock_guard<std::mutex> lock(family_mu_);
    s.glt_bytes += children_.size() * (sizeof(ChunkKey) + 8 + 2 * sizeof(void*) + sizeof(void*));
  }
  size_t table_segments = records * options_.shape.layers;
  s.glt_bytes_per_segment = table_segments ? double(s.glt_bytes) / double(table_segments) : 0;
  if (hot_) {
    HotSet::Counts h = hot_->counts();
    s.copy_chunks = h.copies;
    s.hot_probation_chunks = h.probation;
    s.hot_protected_chunks = h.protected_;
  }
  const Counters& k = counters_;
  s.lookups = k.lookups.load();
  s.hit_chunks = k.hit_chunks.load();
  s.retrieved_chunks = k.retrieved_chunks.load();
  s.miss_chunks_on_error = k.miss_chunks_on_error.load();
  s.offloaded_chunks = k.offloaded_chunks.load();
  s.evicted_chunks = k.evicted_chunks.load();
  s.offload_rejected_chunks = k.offload_rejected_chunks.load();
  s.recovered_chunks = k.recovered_chunks.load();
  s.unreachable_reclaimed_chunks = k.unreachable_reclaimed_chunks.load();
  s.copies_admitted = k.copies_admitted.load();
  s.copies_promoted = k.copies_promoted.load();
  s.copies_dropped = k.copies_dropped.load();
  s.copy_fallbacks = k.copy_fallbacks.load();
  s.bytes_read_from_copies = k.bytes_read_from_copies.load();
  s.bytes_read_from_home = k.bytes_read_from_home.load();
  s.retrieve_errors = k.retrieve_errors.load();
  s.remote_lookups = k.remote_lookups.load();
  s.remote_hit_chunks = k.remote_hit_chunks.load();
  s.remote_published_chunks = k.remote_published_chunks.load();
  s.remote_write_failures = k.remote_write_failures.load();
  s.remote_fallbacks = k.remote_fallbacks.load();
  s.bytes_read_from_remote = k.bytes_read_from_remote.load();
  s.remote_invalidated_chunks = k.remote_invalidated_chunks.load();
  return s;
}

}  // namespace kvpool
