#include "offloader.h"

#include <utility>

#include "kv_layout.h"

namespace kvpool::llama {

size_t StagingStride(const ModelShape& shape) {
  const size_t a = kSegmentAlignment;
  return (shape.SegmentPayloadBytes() + a - 1) / a * a;
}

Offloader::Offloader(Pool& pool, const ModelShape& shape, bool split, StatsBox& stats,
                     size_t max_pending_bytes, BlobRecycler* recycler)
    : pool_(pool),
      shape_(shape),
      stats_(stats),
      max_pending_bytes_(max_pending_bytes),
      recycler_(recycler),
      split_(split),
      thread_([this] { Run(); }) {}

Offloader::~Offloader() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

bool Offloader::Submit(Snapshot snapshot, std::vector<ChunkKey> keys, size_t first) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    const size_t bytes = snapshot.blob.size();
    if (max_pending_bytes_ > 0 && pending_bytes_ > 0 &&
        pending_bytes_ + bytes > max_pending_bytes_) {
      return false;
    }
    pending_bytes_ += bytes;
    queue_.push_back(Job{std::move(snapshot), std::move(keys), first});
  }
  cv_.notify_all();
  return true;
}

void Offloader::Flush() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return queue_.empty() && !busy_; });
}

void Offloader::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stop_ and drained
    Job job = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    const size_t bytes = job.snapshot.blob.size();
    lock.unlock();
    Store(job);
    job = Job{};
    lock.lock();
    pending_bytes_ -= bytes;
    busy_ = false;
    cv_.notify_all();
  }
}

ConstKvBuffer Offloader::Segments(const Job& job, Bytes& staging) const {
  const Snapshot& snap = job.snapshot;
  const uint32_t t = shape_.chunk_tokens;
  if (split_) return SplitSegmentsOf(snap.state, snap.blob.data(), t, job.first);
  const size_t n = job.keys.size() - job.first;
  const size_t stride = StagingStride(shape_);
  staging = Bytes(n * shape_.layers * stride, kSegmentAlignment);
  ConstKvBuffer source;
  source.chunk_stride = stride;
  source.first_chunk = job.first;
  for (uint32_t l = 0; l < shape_.layers; ++l) {
    std::byte* base = staging.data() + l * n * stride;
    source.layer_base.push_back(base);
    for (size_t c = 0; c < n; ++c) {
      CopyOutSegment(snap.state, snap.blob.data(), static_cast<uint32_t>(job.first + c), t, l,
                     base + c * stride);
    }
  }
  return source;
}

void Offloader::ReleaseBlob(Job& job) {
  if (recycler_ != nullptr) recycler_->Give(std::move(job.snapshot.blob));
  job.snapshot = Snapshot{};
}

void Offloader::Store(Job& job) {
  const size_t n = job.keys.size() - job.first;
  Bytes staging;
  const ConstKvBuffer source = Segments(job, staging);
  if (!split_) ReleaseBlob(job);  // staging holds the segments now
  Result<OffloadHandle> h = pool_.Offload(job.keys, source);
  Result<size_t> stored = h.ok() ? h->Wait() : Result<size_t>(h.status());
  if (split_) ReleaseBlob(job);  // the pool wrote from it until now
  stats_.Update([&](ConnectorStats& s) {
    if (stored.ok()) {
      s.offloaded_chunks += *stored;
    } else {
      ++s.offload_failures;
      s.last_error = "offload of " + std::to_string(n) + " chunks: " + stored.status().ToString();
    }
  });
}

}  // namespace kvpool::llama
