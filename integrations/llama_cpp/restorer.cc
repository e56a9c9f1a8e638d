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

void Restorer::Reserve(size_t tokens) {
  if (tokens == 0) return;
  if (!split_) {
    Staging(tokens / shape_.chunk_tokens);
    std::memset(staging_.data(), 0, staging_.size());
  }
  PartialStaging();
  std::memset(partial_.data(), 0, partial_.size());
  Blob(format_.BlobBytes(static_cast<uint32_t>(tokens)));
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

Result<ParsedState> Restorer::Shrink(const ParsedState& layout, uint32_t cells,
                                     PrefillResult& r) {
  if (split_) {  // the rows are in the blob already: move them together
    r.assembled_bytes += cells * format_.CellBytes();
    return KeepFirstCells(layout, cells, blob_.span());
  }
  copied_.assign(copied_.size(), false);  // staging still has them: lay the blob out again
  return WriteSeqStateHeaders(format_, seq_id_, cells, Blob(format_.BlobBytes(cells)));
}

KvBuffer Restorer::PartialStaging() {
  const size_t stride = StagingStride(shape_);
  if (partial_.size() < shape_.layers * stride) {
    partial_ = Bytes(shape_.layers * stride, kSegmentAlignment);
  }
  KvBuffer dest;
  dest.chunk_stride = stride;
  for (uint32_t l = 0; l < shape_.layers; ++l) dest.layer_base.push_back(partial_.data() + l * stride);
  return dest;
}

std::optional<RetrieveHandle> Restorer::StartPartial(const PartialChunk* partial,
                                                     std::string* failure) {
  if (partial == nullptr) return std::nullopt;
  Result<RetrieveHandle> h = pool_.Retrieve({&partial->key, 1}, PartialStaging(), {});
  if (!h.ok()) {
    *failure = "retrieve of the partial chunk: " + h.status().ToString();
    return std::nullopt;
  }
  return std::move(*h);
}

bool Restorer::FinishPartial(std::optional<RetrieveHandle>& handle, std::string* failure) {
  if (!handle) return false;
  Result<size_t> got = handle->Wait();
  if (got.ok() && *got == 1) return true;
  *failure = got.ok() ? "the partial chunk was not delivered (device error, corruption or eviction)"
                      : "retrieve of the partial chunk: " + got.status().ToString();
  return false;
}

size_t Restorer::CopyInPartialChunk(const ParsedState& layout, const PartialChunk& partial) {
  CopyInPartial(layout, blob_.data(), split_, shape_.chunk_tokens, partial, PartialStaging());
  return partial.cells * format_.CellBytes();
}

namespace {

void AddFailure(std::string* failure, const std::string& why) {
  if (why.empty()) return;
  *failure = failure->empty() ? why : *failure + "; " + why;
}

}  // namespace

size_t Restorer::Restore(std::span<const ChunkKey> keys, const PartialChunk* partial,
                         PrefillResult& r, std::string* failure) {
  const size_t n = keys.size();
  const uint32_t t = shape_.chunk_tokens;
  const uint32_t extra = partial != nullptr ? partial->cells : 0;
  const auto cells = static_cast<uint32_t>(n * t + extra);
  std::span<std::byte> blob = Blob(format_.BlobBytes(cells));
  Result<ParsedState> layout = WriteSeqStateHeaders(format_, seq_id_, cells, blob);
  if (!layout.ok()) {
    *failure = "assemble: " + layout.status().ToString();
    return 0;
  }
  std::vector<SourceDevice> before = DeviceCounters(pool_);
  Clock::time_point t0 = Clock::now();
  std::string partial_failure;
  std::optional<RetrieveHandle> partial_read = StartPartial(partial, &partial_failure);
  const Result<size_t> got = RetrieveFull(keys, *layout, blob, r);
  const bool partial_ok = FinishPartial(partial_read, &partial_failure);
  r.retrieve_seconds = Since(t0);
  r.sources = Delta(DeviceCounters(pool_), before);
  if (!got.ok()) {
    *failure = "retrieve: " + got.status().ToString();
    return 0;
  }
  t0 = Clock::now();
  if (*got < n) {
    AddFailure(failure, "retrieve delivered " + std::to_string(*got) + " of " + std::to_string(n) +
                            " cached chunks (device error, corruption or eviction)");
  } else {
    AddFailure(failure, partial_failure);
  }
  const bool with_partial = *got == n && partial_ok;
  const auto kept = static_cast<uint32_t>(*got * t + (with_partial ? extra : 0));
  if (kept == 0) {
    AddFailure(failure, "nothing was restored");
    return 0;
  }
  if (kept < cells) {  // the blob's layout depends on the cell count
    layout = Shrink(*layout, kept, r);
    if (!layout.ok()) {
      AddFailure(failure, "assemble: " + layout.status().ToString());
      return 0;
    }
    blob = Blob(format_.BlobBytes(kept));
  }
  for (uint32_t l = 0; !split_ && l < shape_.layers; ++l) {
    if (!copied_[l]) r.assembled_bytes += CopyLayer(*layout, staged_, *got, l);
  }
  if (with_partial) r.assembled_bytes += CopyInPartialChunk(*layout, *partial);
  r.assemble_seconds = Since(t0);
  t0 = Clock::now();
  Status s = RestoreSnapshot(ctx_, seq_id_, blob);
  r.restore_seconds = Since(t0);
  if (!s.ok()) {
    AddFailure(failure, "restore: " + s.ToString());
    return 0;
  }
  return kept;
}

Result<size_t> Restorer::RetrieveFull(std::span<const ChunkKey> keys, const ParsedState& layout,
                                      std::span<std::byte> blob, PrefillResult& r) {
  const size_t n = keys.size();
  copied_.assign(shape_.layers, false);
  if (n == 0) return size_t{0};
  staged_ = split_ ? SplitSegmentsOf(layout, blob.data(), shape_.chunk_tokens) : Staging(n);
  auto ready = std::make_shared<ReadyLayers>();
  LayerReadyFn on_layer;
  if (!split_) on_layer = [ready](uint32_t layer, size_t valid) { ready->Push(layer, valid); };
  KVP_ASSIGN_OR_RETURN(RetrieveHandle h, pool_.Retrieve(keys, staged_, std::move(on_layer)));
  if (!split_) {
    while (auto next = ready->Pop(h)) {  // copy each complete layer while others load
      if (next->second < n || next->first >= shape_.layers) continue;
      r.assembled_bytes += CopyLayer(layout, staged_, n, next->first);
      copied_[next->first] = true;
    }
  }
  return h.Wait();
}

}  // namespace kvpool::llama
