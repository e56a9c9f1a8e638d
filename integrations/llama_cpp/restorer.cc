#include "restorer.h"

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "offloader.h"

namespace kvpool::llama {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Layers announced by the pool's callback, consumed by the restoring thread.
class ReadyLayers {
 public:
  void Push(uint32_t layer, size_t valid) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ready_.emplace_back(layer, valid);
    }
    cv_.notify_one();
  }
  // The next announced layer, or nullopt once `handle` is done and nothing is left.
  std::optional<std::pair<uint32_t, size_t>> Pop(const RetrieveHandle& handle) {
    std::unique_lock<std::mutex> lock(mu_);
    while (ready_.empty()) {
      if (handle.Done()) return std::nullopt;
      cv_.wait_for(lock, std::chrono::milliseconds(2));
    }
    auto next = ready_.front();
    ready_.pop_front();
    return next;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<uint32_t, size_t>> ready_;
};

// Per-device (reads, bytes) now, to attribute a restore to devices.
std::vector<SourceDevice> DeviceCounters(const Pool& pool) {
  std::vector<SourceDevice> out;
  for (const DeviceStats& d : pool.Stats().devices)
    out.push_back({d.name, d.kind, d.bytes_read, d.reads});
  return out;
}

std::vector<SourceDevice> Delta(std::vector<SourceDevice> after,
                                const std::vector<SourceDevice>& before) {
  std::vector<SourceDevice> out;
  for (size_t i = 0; i < after.size() && i < before.size(); ++i) {
    after[i].bytes -= before[i].bytes;
    after[i].segments -= before[i].segments;
    if (after[i].bytes > 0) out.push_back(after[i]);
  }
  return out;
}

}  // namespace

KvBuffer Restorer::Staging(size_t chunks) {
  const size_t stride = StagingStride(shape_);
  const size_t need = chunks * shape_.layers * stride;
  if (staging_.size() < need) staging_ = Bytes(need, kSegmentAlignment);
  KvBuffer dest;
  dest.chunk_stride = stride;
  for (uint32_t l = 0; l < shape_.layers; ++l)
    dest.layer_base.push_back(staging_.data() + l * chunks * stride);
  return dest;
}

std::span<std::byte> Restorer::Blob(size_t bytes) {
  if (blob_.size() < bytes) blob_ = Bytes(bytes);
  return blob_.span().first(bytes);
}

void Restorer::Reserve(size_t chunks) {
  if (chunks == 0) return;
  if (!split_) {
    Staging(chunks);
    std::memset(staging_.data(), 0, staging_.size());
  }
  Blob(format_.BlobBytes(static_cast<uint32_t>(chunks * shape_.chunk_tokens)));
  std::memset(blob_.data(), 0, blob_.size());
}

size_t Restorer::CopyLayer(const ParsedState& layout, const KvBuffer& staging, size_t chunks,
                           uint32_t layer) {
  for (size_t c = 0; c < chunks; ++c) {
    CopyInSegment(layout, blob_.data(), static_cast<uint32_t>(c), shape_.chunk_tokens, layer,
                  staging.Segment(c, layer));
  }
  return chunks * SegmentBytes(format_.layers[layer], shape_.chunk_tokens);
}

Result<ParsedState> Restorer::Shrink(const ParsedState& layout, size_t chunks,
                                     std::vector<bool>& copied, PrefillResult& r) {
  const auto cells = static_cast<uint32_t>(chunks * shape_.chunk_tokens);
  if (split_) {  // the rows are in the blob already: move them together
    r.assembled_bytes += cells * format_.CellBytes();
    return KeepFirstCells(layout, cells, blob_.span());
  }
  copied.assign(copied.size(), false);  // staging still has them: lay the blob out again
  return WriteSeqStateHeaders(format_, seq_id_, cells, Blob(format_.BlobBytes(cells)));
}

size_t Restorer::Restore(std::span<const ChunkKey> keys, PrefillResult& r, std::string* failure) {
  const size_t n = keys.size();
  const uint32_t t = shape_.chunk_tokens;
  std::span<std::byte> blob = Blob(format_.BlobBytes(static_cast<uint32_t>(n * t)));
  Result<ParsedState> layout =
      WriteSeqStateHeaders(format_, seq_id_, static_cast<uint32_t>(n * t), blob);
  if (!layout.ok()) {
    *failure = "assemble: " + layout.status().ToString();
    return 0;
  }
  const KvBuffer destination = split_ ? SplitSegmentsOf(*layout, blob.data(), t) : Staging(n);
  auto ready = std::make_shared<ReadyLayers>();
  LayerReadyFn on_layer;
  if (!split_) on_layer = [ready](uint32_t layer, size_t valid) { ready->Push(layer, valid); };
  std::vector<SourceDevice> before = DeviceCounters(pool_);
  Clock::time_point t0 = Clock::now();
  Result<RetrieveHandle> h = pool_.Retrieve(keys, destination, std::move(on_layer));
  if (!h.ok()) {
    *failure = "retrieve: " + h.status().ToString();
    return 0;
  }
  std::vector<bool> copied(shape_.layers, false);
  if (!split_) {
    while (auto next = ready->Pop(*h)) {  // copy each complete layer while others load
      if (next->second < n || next->first >= shape_.layers) continue;
      r.assembled_bytes += CopyLayer(*layout, destination, n, next->first);
      copied[next->first] = true;
    }
  }
  Result<size_t> got = h->Wait();
  r.retrieve_seconds = Since(t0);
  r.sources = Delta(DeviceCounters(pool_), before);
  if (!got.ok()) {
    *failure = "retrieve: " + got.status().ToString();
    return 0;
  }
  if (*got == 0) {
    *failure = "retrieve delivered none of " + std::to_string(n) + " cached chunks";
    return 0;
  }
  t0 = Clock::now();
  if (*got < n) {  // the blob's layout depends on the cell count
    *failure = "retrieve delivered " + std::to_string(*got) + " of " + std::to_string(n) +
               " cached chunks (device error, corruption or eviction)";
    layout = Shrink(*layout, *got, copied, r);
    if (!layout.ok()) {
      *failure += "; assemble: " + layout.status().ToString();
      return 0;
    }
    blob = Blob(format_.BlobBytes(static_cast<uint32_t>(*got * t)));
  }
  for (uint32_t l = 0; !split_ && l < shape_.layers; ++l) {
    if (!copied[l]) r.assembled_bytes += CopyLayer(*layout, destination, *got, l);
  }
  r.assemble_seconds = Since(t0);
  t0 = Clock::now();
  Status s = RestoreSnapshot(ctx_, seq_id_, blob);
  r.restore_seconds = Since(t0);
  if (!s.ok()) {
    *failure = "restore: " + s.ToString();
    return 0;
  }
  return *got;
}

}  // namespace kvpool::llama
