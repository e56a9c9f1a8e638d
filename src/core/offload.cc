// Offload: new chunks of a prefix are placed over the devices by bandwidth
// and written in the background under a bounded write budget.
#include <algorithm>

#include "core/pool_impl.h"
#include "core/requests.h"

namespace kvpool {
namespace internal {

OffloadState::OffloadState(PoolImpl* p, size_t n)
    : pool(p), layers(p->layers()), chunks(new Chunk[n]), chunk_count(n), parts_left(n) {}

void OffloadState::OnIoComplete(SegmentIo& io) {
  if (io.index >= record_base()) {
    OnRemoteWrite(io, io.index - record_base(), /*record=*/true);
    return;
  }
  if (io.index >= remote_base()) {
    pool->ReleaseWriteBudget(1);
    OnRemoteWrite(io, (io.index - remote_base()) % remote_count, /*record=*/false);
    return;
  }
  if (io.index >= copy_base()) {
    size_t rel = io.index - copy_base();
    Chunk& chunk = chunks[rel % copy_count];
    uint32_t layer = static_cast<uint32_t>(rel / copy_count);
    if (io.status.ok()) {
      chunk.copy->segment(layer).checksum = io.checksum;
    } else {
      chunk.copy->write_failed.store(true, std::memory_order_release);
    }
    pool->ReleaseWriteBudget(1);
    if (chunk.remaining.fetch_sub(1, std::memory_order_acq_rel) == 1) FinishChunk(chunk);
    return;
  }
  uint32_t layer = static_cast<uint32_t>(io.index / chunk_count);
  Chunk& chunk = chunks[io.index % chunk_count];
  if (io.status.ok()) {
    chunk.record->segment(layer).checksum = io.checksum;
  } else {
    chunk.failed.store(true, std::memory_order_relaxed);
    std::lock_guard<std::mutex> lock(mu);
    if (first_error.ok()) first_error = io.status;
  }
  pool->ReleaseWriteBudget(1);
  if (chunk.remaining.fetch_sub(1, std::memory_order_acq_rel) == 1) FinishChunk(chunk);
}

void OffloadState::OnRemoteWrite(SegmentIo& io, size_t j, bool record) {
  Chunk& chunk = chunks[j];
  if (!record) {
    if (!io.status.ok()) chunk.remote_failed.store(true, std::memory_order_relaxed);
    if (chunk.remote_left.fetch_sub(1, std::memory_order_acq_rel) == 1) PublishRemote(j);
    return;
  }
  auto& c = pool->counters();
  if (io.status.ok()) {
    chunk.remote_record->remote_copy.store(true, std::memory_order_release);
    c.remote_published_chunks.fetch_add(1, std::memory_order_relaxed);
  } else {
    c.remote_write_failures.fetch_add(1, std::memory_order_relaxed);
  }
  chunk.remote_record.reset();
  PartDone();
}

void OffloadState::PublishRemote(size_t j) {
  Chunk& chunk = chunks[j];
  if (chunk.remote_failed.load(std::memory_order_relaxed)) {
    pool->counters().remote_write_failures.fetch_add(1, std::memory_order_relaxed);
    chunk.remote_record.reset();
    PartDone();
    return;
  }
  // The checksums the remote runner computed are those of the home copy:
  // the same source bytes.
  RemoteChunk rc{chunk.remote_record->key, chunk.remote_record->parent, {}};
  rc.checksums.resize(layers);
  for (uint32_t l = 0; l < layers; ++l) rc.checksums[l] = ops[remote_base() + l * remote_count + j].checksum;
  chunk.record_value = pool->remote_tier()->ChunkRecordValue(rc, pool->segment_payload());
  SegmentIo& op = record_ops[j];
  op.kind = IoKind::kWrite;
  op.device = pool->remote();
  op.length = static_cast<uint32_t>(chunk.record_value.size());
  op.buffer = reinterpret_cast<std::byte*>(chunk.record_value.data());
  op.tag = SegmentTag{rc.key, rc.parent, kRecordLayer, 0};
  op.owner = this;
  op.index = static_cast<uint32_t>(record_base() + j);
  SegmentIo* p = &op;
  pool->runner(op.device).Submit(std::span<SegmentIo* const>(&p, 1));
}

void OffloadState::PartDone() {
  if (parts_left.fetch_sub(1, std::memory_order_acq_rel) == 1) Complete();
}

void OffloadState::FinishChunk(Chunk& chunk) {
  ChunkRef record = std::move(chunk.record);
  CopyRef copy = std::move(chunk.copy);
  if (chunk.failed.load()) {
    pool->EraseChunk(record->key, record.get());  // and its copy
  } else {
    // The copy is readable before the chunk is visible.
    if (copy) pool->FinishCopy(record->key, copy);
    if (pool->PublishChunk(record)) {
      stored.fetch_add(1, std::memory_order_relaxed);
    } else if (copy) {
      pool->DropCopy(record->key, copy.get());  // removed while it was written
    }
  }
  record.reset();  // the table (or nobody) holds it now
  copy.reset();
  PartDone();
}

void OffloadState::Complete() {
  std::shared_ptr<OffloadState> self;
  // Counted before the waiters wake, so Stats() after Wait() includes it.
  pool->counters().offloaded_chunks.fetch_add(stored.load(), std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(mu);
    done = true;
    self = std::move(keep_alive);
  }
  cv.notify_all();
  pool->RequestEnd();
}

Result<size_t> OffloadState::Wait() {
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done; });
  size_t n = stored.load();
  if (!first_error.ok() && n == 0) return first_error;
  if (n == 0 && rejected > 0) {
    return Status::NoSpace(std::to_string(rejected) +
                           " chunks found no room on any device, even after eviction");
  }
  return n;
}

bool OffloadState::Done() const {
  std::lock_guard<std::mutex> lock(mu);
  return done;
}

}  // namespace internal

OffloadHandle::OffloadHandle(std::shared_ptr<internal::OffloadCompletion> state)
    : state_(std::move(state)) {}

Result<size_t> OffloadHandle::Wait() {
  if (!state_) return Status::InvalidArgument("Wait on an empty OffloadHandle");
  return state_->Wait();
}

bool OffloadHandle::Done() const { return !state_ || state_->Done(); }

// Builds the write ops of one offload and hands them to the devices under
// the pool's write budget.
class OffloadBuilder {
 public:
  OffloadBuilder(PoolImpl* pool, std::span<const ChunkKey> keys, const ConstKvBuffer& source)
      : pool_(pool), keys_(keys), source_(source), layers_(pool->layers()) {}

  std::shared_ptr<internal::OffloadState> Build() {
    std::vector<std::pair<ChunkRef, size_t>> fresh = ClaimNewChunks();
    size_t fit = fresh.size();
    PoolImpl::Placement placement;
    if (!fresh.empty()) {
      placement = pool_->Place(uint64_t{fresh.size()} * layers_);
      fit = placement.device.size() / layers_;
    }
    for (size_t j = fit; j < fresh.size(); ++j) pool_->EraseChunk(fresh[j].first->key, fresh[j].first.get());
    auto st = std::make_shared<internal::OffloadState>(pool_, fit);
    if (fit > 0 && pool_->hot_set() != nullptr) {
      const size_t admit = std::min(fit, pool_->hot_set()->max_admit());
      std::vector<ChunkKey> keys;
      for (size_t j = 0; j < admit; ++j) keys.push_back(fresh[j].first->key);
      copies_ = pool_->AllocateCopies(keys);
      st->copy_count = copies_.size();
    }
    if (fit > 0 && pool_->remote_writable()) {
      st->remote_count = fit;
      st->parts_left.fetch_add(fit, std::memory_order_relaxed);
    }
    st->rejected = fresh.size() - fit;
    pool_->counters().offload_rejected_chunks.fetch_add(st->rejected, std::memory_order_relaxed);
    if (fit == 0) {
      st->done = true;
      return st;
    }
    MakeOps(*st, fresh, placement, fit);
    return st;
  }

  void Submit(internal::OffloadState& st) {
    std::vector<std::vector<SegmentIo*>> batches(pool_->device_count());
    for (SegmentIo& op : st.ops) {
      if (!pool_->write_budget_.try_acquire()) {
        Flush(batches);
        pool_->write_budget_.acquire();
      }
      batches[op.device].push_back(&op);
    }
    Flush(batches);
  }

 private:
  // Inserts a writing record for every chunk not yet present.
  std::vector<std::pair<ChunkRef, size_t>> ClaimNewChunks() {
    std::vector<std::pair<ChunkRef, size_t>> fresh;
    for (size_t c = source_.first_chunk; c < keys_.size(); ++c) {
      if (pool_->glt().Find(keys_[c])) continue;
      ChunkKey parent = c == 0 ? ChunkKey{} : keys_[c - 1];
      auto rec = std::make_shared<ChunkRecord>(keys_[c], parent, layers_, pool_);
      if (pool_->ClaimChunk(rec)) fresh.emplace_back(std::move(rec), c);
    }
    return fresh;
  }

  void MakeOps(internal::OffloadState& st, std::vector<std::pair<ChunkRef, size_t>>& fresh,
               PoolImpl::Placement& placement, size_t fit) {
    std::vector<size_t> cursor(pool_->device_count(), 0);
    const size_t k = st.copy_count;
    st.ops.resize((fit + k + st.remote_count) * layers_);
    for (size_t j = 0; j < fit; ++j) {
      st.chunks[j].record = fresh[j].first;
      uint32_t writes = layers_;
      if (j < k) {
        st.chunks[j].copy = copies_[j];
        writes += layers_;
      }
      st.chunks[j].remaining.store(writes, std::memory_order_relaxed);
    }
    for (uint32_t l = 0; l < layers_; ++l) {
      for (size_t j = 0; j < fit; ++j) {
        size_t i = l * fit + j;
        uint16_t dev = placement.device[i];
        ChunkRecord& rec = *fresh[j].first;
        SegmentLoc& loc = rec.segment(l);
        loc.device = dev;
        loc.slot = placement.slots[dev][cursor[dev]++];
        SegmentIo& op = st.ops[i];
        op.kind = IoKind::kWrite;
        op.slot = loc.slot;
        op.device = dev;
        op.length = pool_->segment_payload();
        op.buffer = const_cast<std::byte*>(source_.Segment(fresh[j].second, l));
        op.tag = SegmentTag{rec.key, rec.parent, l, pool_->NextSequence()};
        op.owner = &st;
        op.index = static_cast<uint32_t>(i);
      }
    }
    for (size_t j = 0; j < fit; ++j) fresh[j].first->set_placed(layers_);
    MakeCopyOps(st, fresh, fit);
    MakeRemoteOps(st, fresh);
  }

  // The remote copies of chunks [0, remote_count): segments written from the
  // same source, each chunk's record once they are all in.
  void MakeRemoteOps(internal::OffloadState& st,
                     std::vector<std::pair<ChunkRef, size_t>>& fresh) {
    const size_t r = st.remote_count;
    if (r == 0) return;
    st.record_ops.resize(r);
    for (size_t j = 0; j < r; ++j) {
      st.chunks[j].remote_record = fresh[j].first;
      st.chunks[j].remote_left.store(layers_, std::memory_order_relaxed);
    }
    for (uint32_t l = 0; l < layers_; ++l) {
      for (size_t j = 0; j < r; ++j) {
        const ChunkRecord& rec = *fresh[j].first;
        const size_t i = st.remote_base() + l * r + j;
        SegmentIo& op = st.ops[i];
        op.kind = IoKind::kWrite;
        op.slot = 0;  // a remote device addresses segments by (chunk, layer)
        op.device = pool_->remote();
        op.length = pool_->segment_payload();
        op.buffer = const_cast<std::byte*>(source_.Segment(fresh[j].second, l));
        op.tag = SegmentTag{rec.key, rec.parent, l, 0};
        op.owner = &st;
        op.index = static_cast<uint32_t>(i);
      }
    }
  }

  // The DRAM copies of chunks [0, copy_count): written from the same source.
  void MakeCopyOps(internal::OffloadState& st, std::vector<std::pair<ChunkRef, size_t>>& fresh,
                   size_t fit) {
    const size_t k = st.copy_count;
    pool_->counters().copies_admitted.fetch_add(k, std::memory_order_relaxed);
    for (uint32_t l = 0; l < layers_; ++l) {
      for (size_t j = 0; j < k; ++j) {
        size_t i = fit * layers_ + l * k + j;
        const SegmentLoc& loc = copies_[j]->segment(l);
        const ChunkRecord& rec = *fresh[j].first;
        SegmentIo& op = st.ops[i];
        op.kind = IoKind::kWrite;
        op.slot = loc.slot;
        op.device = loc.device;
        op.length = pool_->segment_payload();
        op.buffer = const_cast<std::byte*>(source_.Segment(fresh[j].second, l));
        op.tag = SegmentTag{rec.key, rec.parent, l, 0};
        op.owner = &st;
        op.index = static_cast<uint32_t>(i);
      }
    }
  }

  void Flush(std::vector<std::vector<SegmentIo*>>& batches) {
    for (size_t d = 0; d < batches.size(); ++d) {
      pool_->runner(static_cast<uint16_t>(d)).Submit(batches[d]);
      batches[d].clear();
    }
  }

  PoolImpl* pool_;
  std::span<const ChunkKey> keys_;
  const ConstKvBuffer& source_;
  uint32_t layers_;
  std::vector<CopyRef> copies_;  // for the first chunks of the batch
};

Result<OffloadHandle> PoolImpl::Offload(std::span<const ChunkKey> keys,
                                        const ConstKvBuffer& source) {
  KVP_RETURN_IF_ERROR(
      internal::CheckKvBuffer(source, "source", keys.size(), layers(), segment_payload()));
  OffloadBuilder builder(this, keys, source);
  std::shared_ptr<internal::OffloadState> st = builder.Build();
  if (st->done) return OffloadHandle(st);
  RequestBegin();
  st->keep_alive = st;
  builder.Submit(*st);
  return OffloadHandle(st);
}

}  // namespace kvpool
