// Connector: restore the cached prefix, decode the rest, offload new chunks.
#include <algorithm>
#include <chrono>
#include <string>
#include <utility>

#include "kv_layout.h"
#include "kvpool_llama.h"
#include "llama_io.h"
#include "offloader.h"
#include "restorer.h"

namespace kvpool::llama {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace

class Connector::Impl {
 public:
  Impl(llama_context* ctx, Pool& pool, ConnectorOptions options, StateFormat format,
       ModelShape shape, uint64_t fingerprint)
      : ctx_(ctx),
        pool_(pool),
        options_(std::move(options)),
        format_(std::move(format)),
        shape_(std::move(shape)),
        fingerprint_(fingerprint),
        ns_(NamespaceFor(options_.tenant_salt)),
        restorer_(ctx, pool, format_, shape_, options_.seq_id),
        offloader_(pool, shape_, LayoutForFormat(format_) == SegmentLayout::kSplit, stats_,
                   options_.max_pending_offload_bytes, &blobs_) {
    restorer_.Reserve(options_.reserve_tokens / shape_.chunk_tokens);
  }

  Result<PrefillResult> Prefill(std::span<const int32_t> tokens);
  // Clears the sequence and restores the longest cached prefix of `tokens`
  // in namespace `ns`, leaving at least one token; counts it in the stats.
  Result<PrefillResult> Restore(std::span<const int32_t> tokens, const Namespace& ns,
                                size_t* restored_chunks);
  Result<size_t> Offload(std::span<const int32_t> tokens, const Namespace& ns, size_t first,
                         double* snapshot_seconds);
  size_t CachedTokens(std::span<const int32_t> tokens, std::string_view salt) const {
    const uint32_t t = shape_.chunk_tokens;
    const size_t usable = tokens.empty() ? 0 : (tokens.size() - 1) / t;
    if (usable == 0) return 0;
    std::vector<ChunkKey> keys = ChainChunkKeys(NamespaceFor(salt), tokens.first(usable * t), t);
    return pool_.Lookup(keys) * t;
  }
  Namespace NamespaceFor(std::string_view salt) const {
    return MakeNamespace(fingerprint_, format_, shape_, std::string(salt));
  }
  void Flush() { offloader_.Flush(); }
  ConnectorStats Stats() const { return stats_.Get(); }
  const ModelShape& shape() const { return shape_; }
  const Namespace& ns() const { return ns_; }

 private:
  void Fail(PrefillResult& r, const std::string& why);
  void Skip(const std::string& why);

  llama_context* ctx_;
  Pool& pool_;
  const ConnectorOptions options_;
  const StateFormat format_;
  const ModelShape shape_;
  const uint64_t fingerprint_;
  const Namespace ns_;
  StatsBox stats_;
  BlobRecycler blobs_;  // snapshot buffers, reused
  Restorer restorer_;
  Offloader offloader_;  // last: joins before the members it uses go away
};

void Connector::Impl::Fail(PrefillResult& r, const std::string& why) {
  r.fallback = r.fallback.empty() ? why : r.fallback + "; " + why;
  stats_.Update([&](ConnectorStats& s) {
    ++s.restore_failures;
    s.last_error = why;
  });
}

void Connector::Impl::Skip(const std::string& why) {
  stats_.Update([&](ConnectorStats& st) {
    ++st.offload_skipped;
    st.last_error = why;
  });
}

Result<PrefillResult> Connector::Impl::Restore(std::span<const int32_t> tokens,
                                               const Namespace& ns, size_t* restored_chunks) {
  if (tokens.empty()) return Status::InvalidArgument("Prefill: empty prompt");
  const uint32_t t = shape_.chunk_tokens;
  PrefillResult r;
  r.prompt_tokens = tokens.size();
  ClearSequence(ctx_, options_.seq_id);

  // At least one token must be decoded to get logits.
  const size_t usable = (tokens.size() - 1) / t;
  std::vector<ChunkKey> keys = ChainChunkKeys(ns, tokens.first(usable * t), t);
  Clock::time_point t0 = Clock::now();
  r.cached_chunks = usable > 0 ? pool_.Lookup(keys) : 0;
  r.lookup_seconds = Since(t0);
  size_t restored = 0;
  if (r.cached_chunks > 0) {
    std::string failure;
    restored = restorer_.Restore(std::span(keys).first(r.cached_chunks), r, &failure);
    if (!failure.empty()) Fail(r, failure);
  }
  r.restored_tokens = restored * t;
  r.computed_tokens = tokens.size() - r.restored_tokens;
  stats_.Update([&](ConnectorStats& st) {
    ++st.prefills;
    st.prompt_tokens += r.prompt_tokens;
    st.hit_chunks += r.cached_chunks;
    st.restored_chunks += restored;
    st.restored_tokens += r.restored_tokens;
    st.computed_tokens += r.computed_tokens;
    st.recomputed_tokens += (r.cached_chunks - restored) * t;
  });
  *restored_chunks = restored;
  return r;
}

Result<PrefillResult> Connector::Impl::Prefill(std::span<const int32_t> tokens) {
  const Clock::time_point start = Clock::now();
  size_t restored = 0;
  KVP_ASSIGN_OR_RETURN(PrefillResult r, Restore(tokens, ns_, &restored));
  const Clock::time_point t0 = Clock::now();
  Status s = DecodeTokens(ctx_, tokens.subspan(r.restored_tokens),
                          static_cast<int32_t>(r.restored_tokens), options_.seq_id, true);
  r.decode_seconds = Since(t0);
  r.ttft_seconds = Since(start);
  if (!s.ok()) return s;
  if (options_.offload) {
    Result<size_t> queued = Offload(tokens, ns_, restored, &r.snapshot_seconds);
    if (queued.ok()) r.offload_chunks = *queued;
  }
  return r;
}

Result<size_t> Connector::Impl::Offload(std::span<const int32_t> tokens, const Namespace& ns,
                                        size_t first, double* snapshot_seconds) {
  const uint32_t t = shape_.chunk_tokens;
  std::vector<ChunkKey> keys = ChainChunkKeys(ns, tokens, t);
  if (keys.size() <= first) return size_t{0};
  // Chunks the pool already holds (a prefix) are not copied out again.
  const size_t held = pool_.Lookup(keys);
  if (held == keys.size()) return size_t{0};  // nothing new
  first = std::max(first, held);
  Clock::time_point t0 = Clock::now();
  Result<Snapshot> snap = TakeSnapshot(ctx_, options_.seq_id, &blobs_);
  if (snapshot_seconds != nullptr) *snapshot_seconds = Since(t0);
  Status bad;
  if (!snap.ok()) {
    bad = snap.status().WithContext("snapshot");
  } else if (!(snap->state.format == format_)) {
    bad = Status::Corruption("snapshot: the state format differs from the one probed at Create");
  } else if (snap->state.cells < keys.size() * t || !snap->state.PositionsAreCellIndices()) {
    bad = Status::InvalidArgument("snapshot: the sequence does not hold tokens 0.." +
                                  std::to_string(keys.size() * t - 1) + " in cells 0.. in order");
  }
  if (!bad.ok()) {
    Skip(bad.ToString());
    return bad;
  }
  const size_t handed_over = keys.size() - first;
  if (!offloader_.Submit(std::move(*snap), std::move(keys), first)) {
    Status full = Status::Busy("offload backlog over max_pending_offload_bytes (" +
                               std::to_string(options_.max_pending_offload_bytes) + " B)");
    Skip(full.ToString());
    return full;
  }
  stats_.Update([](ConnectorStats& st) { ++st.offload_jobs; });
  return handed_over;
}

// ---- Connector ----

Connector::Connector(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Connector::~Connector() = default;

Result<ModelShape> Connector::KvShape(llama_context* ctx, uint32_t chunk_tokens, int32_t seq_id) {
  if (chunk_tokens == 0) return Status::InvalidArgument("chunk_tokens must be > 0");
  KVP_ASSIGN_OR_RETURN(StateFormat format, ProbeStateFormat(ctx, seq_id));
  return ShapeForFormat(format, ModelKvHeads(ctx), chunk_tokens);
}

Result<std::unique_ptr<Connector>> Connector::Create(llama_context* ctx, Pool& pool,
                                                     const ConnectorOptions& options) {
  if (ctx == nullptr) return Status::InvalidArgument("Connector::Create: null llama_context");
  const ModelShape& pool_shape = pool.options().shape;
  KVP_ASSIGN_OR_RETURN(StateFormat format, ProbeStateFormat(ctx, options.seq_id));
  KVP_ASSIGN_OR_RETURN(ModelShape shape,
                       ShapeForFormat(format, ModelKvHeads(ctx), pool_shape.chunk_tokens));
  if (shape.layers != pool_shape.layers ||
      shape.SegmentPayloadBytes() != pool_shape.SegmentPayloadBytes()) {
    return Status::InvalidArgument(
        "pool shape '" + pool_shape.name + "' (" + std::to_string(pool_shape.layers) + " layers, " +
        std::to_string(pool_shape.SegmentPayloadBytes()) +
        " B segments) does not hold this context's KV (" + std::to_string(shape.layers) +
        " layers, " + std::to_string(shape.SegmentPayloadBytes()) +
        " B segments); open the pool with Connector::KvShape");
  }
  uint64_t fp = options.model_fingerprint;
  if (fp == 0) {
    if (options.model_path.empty()) {
      return Status::InvalidArgument(
          "ConnectorOptions: model_path or model_fingerprint is required");
    }
    KVP_ASSIGN_OR_RETURN(fp, FingerprintModelFile(options.model_path));
  }
  return std::unique_ptr<Connector>(
      new Connector(std::make_unique<Impl>(ctx, pool, options, std::move(format), pool_shape, fp)));
}

Result<PrefillResult> Connector::Prefill(std::span<const int32_t> tokens) {
  return impl_->Prefill(tokens);
}
Result<PrefillResult> Connector::Restore(std::span<const int32_t> tokens,
                                        std::string_view tenant_salt) {
  size_t restored = 0;
  return impl_->Restore(tokens, impl_->NamespaceFor(tenant_salt), &restored);
}
size_t Connector::CachedTokens(std::span<const int32_t> tokens,
                               std::string_view tenant_salt) const {
  return impl_->CachedTokens(tokens, tenant_salt);
}
Result<size_t> Connector::Offload(std::span<const int32_t> tokens) {
  return impl_->Offload(tokens, impl_->ns(), 0, nullptr);
}
Result<size_t> Connector::Offload(std::span<const int32_t> tokens, std::string_view tenant_salt) {
  return impl_->Offload(tokens, impl_->NamespaceFor(tenant_salt), 0, nullptr);
}
void Connector::Flush() { impl_->Flush(); }
ConnectorStats Connector::Stats() const { return impl_->Stats(); }
const ModelShape& Connector::shape() const { return impl_->shape(); }
const Namespace& Connector::ns() const { return impl_->ns(); }

}  // namespace kvpool::llama
