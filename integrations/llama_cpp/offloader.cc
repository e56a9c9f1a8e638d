#include "offloader.h"

#include <cstring>
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

bool Offloader::Submit(Snapshot snapshot, std::vector<ChunkKey> keys, size_t first,
                       std::vector<PartialChunk> partials) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    const size_t bytes = snapshot.blob.size();
    if (max_pending_bytes_ > 0 && pending_bytes_ > 0 &&
        pending_bytes_ + bytes > max_pending_bytes_) {
      return false;
    }
    pending_bytes_ += bytes;
    queue_.push_back(Job{std::move(snapshot), std::move(keys), first, std::move(partials)});
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
  if (job.snapshot.blob.data() == nullptr) return;  // released already
  if (recycler_ != nullptr) recycler_->Give(std::move(job.snapshot.blob));
  job.snapshot = Snapshot{};
}

std::vector<ConstKvBuffer> Offloader::PartialSegments(const Job& job, Bytes& staging) const {
  const Snapshot& snap = job.snapshot;
  const size_t stride = StagingStride(shape_);
  const size_t per_chunk = shape_.layers * stride;
  staging = Bytes(job.partials.size() * per_chunk, kSegmentAlignment);
  std::memset(staging.data(), 0, staging.size());
  std::vector<ConstKvBuffer> out;
  for (size_t i = 0; i < job.partials.size(); ++i) {
    KvBuffer segments;
    ConstKvBuffer source;
    source.chunk_stride = segments.chunk_stride = stride;
    source.first_chunk = job.partials[i].chunk;
    for (uint32_t l = 0; l < shape_.layers; ++l) {
      segments.layer_base.push_back(staging.data() + i * per_chunk + l * stride);
      source.layer_base.push_back(segments.layer_base.back());
    }
    CopyOutPartial(snap.state, snap.blob.data(), split_, shape_.chunk_tokens, job.partials[i],
                   segments);
    out.push_back(std::move(source));
  }
  return out;
}

void Offloader::StoreChunks(std::span<const ChunkKey> keys, const ConstKvBuffer& source,
                            bool partial) {
  const size_t n = keys.size() - source.first_chunk;
  Result<OffloadHandle> h = pool_.Offload(keys, source);
  Result<size_t> stored = h.ok() ? h->Wait() : Result<size_t>(h.status());
  stats_.Update([&](ConnectorStats& s) {
    if (stored.ok()) {
      (partial ? s.offloaded_partial_chunks : s.offloaded_chunks) += *stored;
      return;
    }
    ++s.offload_failures;
    s.last_error = (partial ? std::string("offload of a partial chunk: ")
                            : "offload of " + std::to_string(n) + " chunks: ") +
                   stored.status().ToString();
  });
}

void Offloader::Store(Job& job) {
  Bytes partial_staging;
  const std::vector<ConstKvBuffer> partials = PartialSegments(job, partial_staging);
  if (job.first < job.keys.size()) {
    Bytes staging;
    const ConstKvBuffer source = Segments(job, staging);
    if (!split_) ReleaseBlob(job);  // staging holds the segments now
    StoreChunks(job.keys, source, false);
  }
  ReleaseBlob(job);  // the pool wrote from it until now (split)
  // Each partial chunk once the full chunks it hangs from are stored.
  std::vector<ChunkKey> keys;
  for (size_t i = 0; i < partials.size(); ++i) {
    const PartialChunk& p = job.partials[i];
    keys.assign(job.keys.begin(), job.keys.begin() + static_cast<std::ptrdiff_t>(p.chunk));
    keys.push_back(p.key);
    StoreChunks(keys, partials[i], true);
  }
}

}  // namespace kvpool::llama
