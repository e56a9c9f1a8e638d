// Retrieval: one read plan per request, fanned out to every device at once,
// delivered layer by layer.
#include <algorithm>

#include "core/pool_impl.h"
#include "core/requests.h"
#include "retrieval/read_plan.h"

namespace kvpool {
namespace internal {

RetrieveState::RetrieveState(PoolImpl* p, size_t f, size_t n, uint32_t l, LayerReadyFn cb)
    : pool(p), first(f), chunks(n), layers(l), on_layer(std::move(cb)),
      layer_remaining(new std::atomic<uint64_t>[l]), first_bad(n), ops_remaining(n * l) {
  for (uint32_t i = 0; i < l; ++i) layer_remaining[i].store(n, std::memory_order_relaxed);
}

void RetrieveState::OnIoComplete(SegmentIo& io) {
  const size_t chunk = io.index % chunks;
  const uint32_t layer = static_cast<uint32_t>(io.index / chunks);
  if (io.kind == IoKind::kWrite) {  // a promotion write
    PromotionDone(chunk, io.status.ok());
    if (ops_remaining.fetch_sub(1, std::memory_order_acq_rel) == 1) Complete();
    return;
  }
  if (!io.status.ok() && from_copy[io.index]) {
    FallBackToHome(io, chunk, layer);
    return;
  }
  auto& c = pool->counters();
  if (io.status.ok()) {
    (io.device == pool->remote()      ? c.bytes_read_from_remote
     : from_copy[io.index] == kFromCopy ? c.bytes_read_from_copies
                                        : c.bytes_read_from_home)
        .fetch_add(io.length, std::memory_order_relaxed);
    if (promos[chunk]) IssuePromotion(io, chunk, layer);
  } else {
    size_t seen = first_bad.load();
    while (chunk < seen && !first_bad.compare_exchange_weak(seen, chunk)) {
    }
    const ChunkRef& rec = records[chunk];
    // Never serve it again; the first failed layer of a remote-only chunk
    // also unpublishes it there.
    if (pool->EraseChunk(rec->key, rec.get()) && io.device == pool->remote()) {
      pool->InvalidateRemote(rec->key, io.status);
    }
    if (promos[chunk]) {
      PromotionDone(chunk, false);  // the write of this layer never happens
      ops_remaining.fetch_sub(1, std::memory_order_acq_rel);  // never the last: this op is left
    }
    std::lock_guard<std::mutex> lock(mu);
    if (first_error.ok()) first_error = io.status;
  }
  if (layer_remaining[layer].fetch_sub(1, std::memory_order_acq_rel) == 1) AnnounceLayers();
  // Last access to the state by this thread unless it is the last op: every
  // layer has been announced once all ops got here.
  if (ops_remaining.fetch_sub(1, std::memory_order_acq_rel) == 1) Complete();
}

void RetrieveState::FallBackToHome(SegmentIo& io, size_t chunk, uint32_t layer) {
  ChunkRecord& rec = *records[chunk];
  if (from_copy[io.index] == kFromRemote) {
    // Gone or damaged there: read it here from now on, and unpublish it
    // there once (the first failed layer).
    if (rec.remote_copy.exchange(false, std::memory_order_acq_rel)) pool->InvalidateRemote(rec.key, io.status);
    pool->counters().remote_fallbacks.fetch_add(1, std::memory_order_relaxed);
  } else {
    pool->DropCopy(rec.key, read_copies[chunk].get());
    pool->counters().copy_fallbacks.fetch_add(1, std::memory_order_relaxed);
  }
  const SegmentLoc& home = rec.segment(layer);
  from_copy[io.index] = 0;
  io.device = home.device;
  io.slot = home.slot;
  io.checksum = home.checksum;
  io.status = Status::OK();
  SegmentIo* op = &io;
  pool->runner(home.device).Submit(std::span<SegmentIo* const>(&op, 1));
}

void RetrieveState::IssuePromotion(const SegmentIo& read, size_t chunk, uint32_t layer) {
  CopySet& copy = *promos[chunk];
  SegmentLoc& loc = copy.segment(layer);
  loc.checksum = read.checksum;  // the bytes were just verified against it
  SegmentIo& op = promo_ops[read.index];
  op.kind = IoKind::kWrite;
  op.slot = loc.slot;
  op.device = loc.device;
  op.length = read.length;
  op.buffer = read.buffer;
  op.checksum = read.checksum;
  op.checksum_given = true;
  op.tag = read.tag;
  op.owner = this;
  op.index = read.index;
  SegmentIo* p = &op;
  pool->runner(loc.device).Submit(std::span<SegmentIo* const>(&p, 1));
}

void RetrieveState::PromotionDone(size_t chunk, bool ok) {
  const CopyRef& copy = promos[chunk];
  if (!ok) copy->write_failed.store(true, std::memory_order_release);
  if (copy->writes_left.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    pool->FinishCopy(records[chunk]->key, copy);
  }
}

void RetrieveState::AnnounceLayers() {
  std::lock_guard<std::mutex> announce(announce_mu);
  while (next_layer < layers && layer_remaining[next_layer].load() == 0) {
    if (on_layer) on_layer(next_layer, first + first_bad.load());
    ++next_layer;
  }
}

void RetrieveState::Complete() {
  std::shared_ptr<RetrieveState> self;
  {
    std::lock_guard<std::mutex> lock(mu);
    size_t good = first_bad.load();
    valid = first + good;
    auto& c = pool->counters();
    c.retrieved_chunks.fetch_add(good, std::memory_order_relaxed);
    c.miss_chunks_on_error.fetch_add(chunks - good, std::memory_order_relaxed);
    if (good < chunks) c.retrieve_errors.fetch_add(1, std::memory_order_relaxed);
    records.clear();
    read_copies.clear();  // a dropped copy's slots are freed here
    promos.clear();
    elapsed = SecondsSince(start);
    done = true;
    self = std::move(keep_alive);
  }
  cv.notify_all();
  pool->RequestEnd();
  // `self` may hold the last reference: the state is freed on return.
}

void RetrieveState::CompleteEmpty(size_t present) {
  if (on_layer) {
    for (uint32_t l = 0; l < layers; ++l) on_layer(l, present);
  }
  std::lock_guard<std::mutex> lock(mu);
  done = true;
  valid = present;
}

Result<size_t> RetrieveState::Wait() {
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done; });
  return valid;
}

bool RetrieveState::Done() const {
  std::lock_guard<std::mutex> lock(mu);
  return done;
}

double RetrieveState::ElapsedSeconds() const {
  std::lock_guard<std::mutex> lock(mu);
  return elapsed;
}

Status RetrieveState::error() const {
  std::lock_guard<std::mutex> lock(mu);
  return first_error;
}

}  // namespace internal

RetrieveHandle::RetrieveHandle(std::shared_ptr<internal::RetrieveCompletion> state)
    : state_(std::move(state)) {}

Result<size_t> RetrieveHandle::Wait() {
  if (!state_) return Status::InvalidArgument("Wait on an empty RetrieveHandle");
  return state_->Wait();
}

bool RetrieveHandle::Done() const { return !state_ || state_->Done(); }

double RetrieveHandle::ElapsedSeconds() const { return state_ ? state_->ElapsedSeconds() : 0; }

Status RetrieveHandle::error() const { return state_ ? state_->error() : Status::OK(); }

std::vector<DeviceLoad> PoolImpl::PlanLoads() const {
  std::vector<DeviceLoad> loads;
  for (const auto& r : runners_) {
    DeviceLoad d;
    if (r->in_placement()) {  // a quarantined device leaves read plans
      double live = r->live_read_gibps();
      d.gibps = live > 0 ? live : r->bandwidth_gibps();
      if (d.gibps <= 0) d.gibps = 1e-3;  // never probed: usable, last choice
    }
    d.queued_bytes = r->queued_read_bytes();
    loads.push_back(d);
  }
  return loads;
}

size_t PoolImpl::PlanRetrieval(const std::vector<ChunkRef>& records,
                               const std::vector<CopyRef>& copies, std::vector<uint16_t>* plan) {
  const uint32_t layers = this->layers();
  const size_t n = records.size();
  std::vector<DeviceLoad> loads = PlanLoads();
  auto copies_of = [&](size_t c, uint32_t l) {
    const ChunkRecord& rec = *records[c];
    SegmentCopies s{rec.segment(l).device, kNoDevice, kNoDevice};
    if (copies[c]) s.copy = copies[c]->segment(l).device;
    if (s.home != remote_ && rec.remote_copy.load(std::memory_order_acquire)) s.remote = remote_;
    for (uint16_t* d : {&s.home, &s.copy, &s.remote}) {
      if (*d != kNoDevice && loads[*d].gibps <= 0) *d = kNoDevice;
    }
    return s;
  };
  // The prefix is usable up to its first chunk with a layer on no usable device.
  size_t usable = 0;
  for (; usable < n; ++usable) {
    bool ok = true;
    for (uint32_t l = 0; l < layers && ok; ++l) {
      SegmentCopies s = copies_of(usable, l);
      ok = s.home != kNoDevice || s.copy != kNoDevice || s.remote != kNoDevice;
    }
    if (!ok) break;
  }
  std::vector<SegmentCopies> segs(usable * layers);
  for (uint32_t l = 0; l < layers; ++l) {
    for (size_t c = 0; c < usable; ++c) segs[l * usable + c] = copies_of(c, l);
  }
  *plan = PlanReads(segs, usable, loads, segment_payload());
  return usable;
}

void PoolImpl::StartPromotions(internal::RetrieveState& st,
                               const std::vector<HotSet::Access>& access) {
  std::vector<size_t> wanted;
  std::vector<ChunkKey> keys;
  for (size_t c = 0; c < st.chunks; ++c) {
    if (!access[c].admit) continue;
    wanted.push_back(c);
    keys.push_back(st.records[c]->key);
  }
  std::vector<CopyRef> copies = AllocateCopies(keys);
  for (size_t j = 0; j < copies.size(); ++j) st.promos[wanted[j]] = std::move(copies[j]);
  counters_.copies_promoted.fetch_add(copies.size(), std::memory_order_relaxed);
  if (!copies.empty()) st.promo_ops.resize(st.chunks * layers());
}

Result<RetrieveHandle> PoolImpl::Retrieve(std::span<const ChunkKey> keys,
                                          const KvBuffer& destination,
                                          LayerReadyFn on_layer_ready) {
  const uint32_t layers = options_.shape.layers;
  KVP_RETURN_IF_ERROR(internal::CheckKvBuffer(destination, "destination", keys.size(), layers,
                                              segment_payload()));
  std::vector<ChunkRef> records = FindPrefix(keys);
  Touch(records);
  const size_t present = records.size();
  counters_.lookups.fetch_add(1, std::memory_order_relaxed);
  counters_.hit_chunks.fetch_add(present, std::memory_order_relaxed);
  const size_t first = std::min(destination.first_chunk, present);
  records.erase(records.begin(), records.begin() + first);
  std::vector<HotSet::Access> access(records.size());
  if (hot_ && !records.empty()) {
    std::vector<ChunkKey> read_keys;
    for (const ChunkRef& r : records) read_keys.push_back(r->key);
    access = hot_->NoteRead(read_keys, hot_->max_admit());
  }
  std::vector<CopyRef> read_copies(records.size());
  for (size_t c = 0; c < records.size(); ++c) read_copies[c] = std::move(access[c].copy);
  std::vector<uint16_t> plan;
  const size_t n = PlanRetrieval(records, read_copies, &plan);
  auto st = std::make_shared<internal::RetrieveState>(this, first, n, layers,
                                                      std::move(on_layer_ready));
  if (n == 0) {
    st->CompleteEmpty(first);
    return RetrieveHandle(st);
  }
  records.resize(n);
  st->records = std::move(records);
  read_copies.resize(n);
  st->read_copies = std::move(read_copies);
  st->promos.resize(n);
  access.resize(n);
  if (hot_) StartPromotions(*st, access);
  size_t promoted = 0;
  for (const CopyRef& p : st->promos) promoted += p ? 1 : 0;
  st->ops_remaining.store(n * layers + promoted * layers, std::memory_order_relaxed);
  st->ops.resize(n * layers);
  st->from_copy.assign(n * layers, 0);
  std::vector<std::vector<SegmentIo*>> per_device(runners_.size());
  for (uint32_t l = 0; l < layers; ++l) {
    for (size_t c = 0; c < n; ++c) {
      const size_t i = l * n + c;
      const ChunkRecord& rec = *st->records[c];
      const bool copy = st->read_copies[c] && plan[i] == st->read_copies[c]->segment(l).device;
      const bool remote = !copy && plan[i] == remote_ && rec.segment(l).device != remote_;
      const SegmentLoc& loc = copy ? st->read_copies[c]->segment(l) : rec.segment(l);
      SegmentIo& op = st->ops[i];
      op.kind = IoKind::kRead;
      op.slot = remote ? 0 : loc.slot;  // a remote device reads by (chunk, layer)
      op.device = remote ? remote_ : loc.device;
      op.length = segment_payload();
      op.buffer = destination.Segment(first + c, l);
      op.checksum = loc.checksum;  // a remote copy has the home copy's bytes
      op.tag = SegmentTag{rec.key, rec.parent, l, 0};
      op.owner = st.get();
      op.index = static_cast<uint32_t>(i);
      st->from_copy[i] = copy ? internal::kFromCopy : remote ? internal::kFromRemote : 0;
      per_device[op.device].push_back(&op);
    }
  }
  RequestBegin();
  st->keep_alive = st;
  for (size_t d = 0; d < runners_.size(); ++d) runners_[d]->Submit(per_device[d]);
  return RetrieveHandle(st);
}

}  // namespace kvpool
