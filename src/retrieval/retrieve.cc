// Retrieval: one read plan per request, fanned out to every device at once,
// delivered layer by layer.
#include <algorithm>

#include "core/pool_impl.h"
#include "core/requests.h"

namespace kvpool {
namespace internal {

RetrieveState::RetrieveState(PoolImpl* p, size_t f, size_t n, uint32_t l, LayerReadyFn cb)
    : pool(p), first(f), chunks(n), layers(l), on_layer(std::move(cb)),
      layer_remaining(new std::atomic<uint64_t>[l]), first_bad(n), ops_remaining(n * l) {
  for (uint32_t i = 0; i < l; ++i) layer_remaining[i].store(n, std::memory_order_relaxed);
}

void RetrieveState::OnIoComplete(SegmentIo& io) {
  uint32_t layer = static_cast<uint32_t>(io.index / chunks);
  size_t chunk = io.index % chunks;
  if (!io.status.ok()) {
    size_t seen = first_bad.load();
    while (chunk < seen && !first_bad.compare_exchange_weak(seen, chunk)) {
    }
    const ChunkRef& rec = records[chunk];
    pool->EraseChunk(rec->key, rec.get());  // never serve it again
    std::lock_guard<std::mutex> lock(mu);
    if (error.ok()) error = io.status;
  }
  if (layer_remaining[layer].fetch_sub(1, std::memory_order_acq_rel) == 1) AnnounceLayers();
  // Last access to the state by this thread unless it is the last op: every
  // layer has been announced once all ops got here.
  if (ops_remaining.fetch_sub(1, std::memory_order_acq_rel) == 1) Complete();
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
    records.clear();
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

}  // namespace internal

RetrieveHandle::RetrieveHandle(std::shared_ptr<internal::RetrieveState> state)
    : state_(std::move(state)) {}

Result<size_t> RetrieveHandle::Wait() {
  if (!state_) return Status::InvalidArgument("Wait on an empty RetrieveHandle");
  std::unique_lock<std::mutex> lock(state_->mu);
  state_->cv.wait(lock, [&] { return state_->done; });
  return state_->valid;
}

bool RetrieveHandle::Done() const {
  if (!state_) return true;
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->done;
}

double RetrieveHandle::ElapsedSeconds() const {
  if (!state_) return 0;
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->elapsed;
}

Result<RetrieveHandle> PoolImpl::Retrieve(std::span<const ChunkKey> keys,
                                          const KvBuffer& destination,
                                          LayerReadyFn on_layer_ready) {
  const uint32_t layers = options_.shape.layers;
  if (destination.layer_base.size() != layers) {
    return Status::InvalidArgument("destination.layer_base has " +
                                   std::to_string(destination.layer_base.size()) +
                                   " layers, the model has " + std::to_string(layers));
  }
  if (destination.first_chunk > keys.size()) {
    return Status::InvalidArgument("destination.first_chunk " +
                                   std::to_string(destination.first_chunk) +
                                   " is past the last key (" + std::to_string(keys.size()) + ")");
  }
  std::vector<ChunkRef> records = FindPrefix(keys);
  Touch(records);
  const size_t present = records.size();
  counters_.lookups.fetch_add(1, std::memory_order_relaxed);
  counters_.hit_chunks.fetch_add(present, std::memory_order_relaxed);
  const size_t first = std::min(destination.first_chunk, present);
  const size_t n = present - first;
  auto st = std::make_shared<internal::RetrieveState>(this, first, n, layers,
                                                      std::move(on_layer_ready));
  if (n == 0) {
    st->CompleteEmpty(present);
    return RetrieveHandle(st);
  }
  st->records.assign(std::make_move_iterator(records.begin() + first),
                     std::make_move_iterator(records.end()));
  st->ops.resize(n * layers);
  std::vector<std::vector<SegmentIo*>> per_device(runners_.size());
  for (uint32_t l = 0; l < layers; ++l) {
    for (size_t c = 0; c < n; ++c) {
      const ChunkRecord& rec = *st->records[c];
      const SegmentLoc& loc = rec.segment(l);
      SegmentIo& op = st->ops[l * n + c];
      op.kind = IoKind::kRead;
      op.slot = loc.slot;
      op.device = loc.device;
      op.length = segment_payload();
      op.buffer = destination.Segment(first + c, l);
      op.checksum = loc.checksum;
      op.tag = SegmentTag{rec.key, rec.parent, l, 0};
      op.owner = st.get();
      op.index = static_cast<uint32_t>(l * n + c);
      per_device[loc.device].push_back(&op);
    }
  }
  RequestBegin();
  st->keep_alive = st;
  for (size_t d = 0; d < runners_.size(); ++d) runners_[d]->Submit(per_device[d]);
  return RetrieveHandle(st);
}

}  // namespace kvpool
