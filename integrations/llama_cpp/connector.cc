// Connector: restore the cached prefix, decode the rest, offload new chunks.
#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <utility>

#include "kv_layout.h"
#include "kvpool_llama.h"
#include "llama_io.h"
#include "offloader.h"
#include "partial_chunk.h"
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
    restorer_.Reserve(options_.reserve_tokens);
  }

  // What the pool holds of a prompt, all but its last token: the keys of
  // the present full chunks, then the partial chunk after them.
  struct Found {
    std::vector<ChunkKey> keys;
    std::optional<PartialChunk> partial;
  };

  Result<PrefillResult> Prefill(std::span<const int32_t> tokens);
  // Clears the sequence and restores `found` (what FindCached found of
  // `tokens` in namespace `ns`, or nullopt: search now), leaving at least
  // one token; counts it in the stats.
  Result<PrefillResult> Restore(std::span<const int32_t> tokens, const Namespace& ns,
                                std::optional<Found> found, size_t* restored_chunks);
  // Stores the new full chunks of `tokens` from chunk `first` on, and the
  // partial chunks at tokens.size() and `prompt_end` (0: none).
  Result<size_t> Offload(std::span<const int32_t> tokens, const Namespace& ns, size_t first,
                         size_t prompt_end, double* snapshot_seconds);
  Found FindCached(std::span<const int32_t> tokens, const Namespace& ns) const {
    const uint32_t t = shape_.chunk_tokens;
    const size_t usable = tokens.empty() ? 0 : (tokens.size() - 1) / t;
    Found c{ChainChunkKeys(ns, tokens.first(usable * t), t), std::nullopt};
    c.keys.resize(c.keys.empty() ? 0 : pool_.Lookup(c.keys));
    if (options_.partial_chunks) {
      c.partial = FindPartialChunk(pool_, ns, tokens, c.keys, shape_.chunk_tokens);
    }
    return c;
  }
  CachedPrefix ToPublic(const Found& f) const;
  // `cached` as a Found when it is what FindCached could have found of
  // `tokens` in `ns` (its keys are those of tokens' chunks); nullopt if not.
  std::optional<Found> Match(const CachedPrefix& cached, std::span<const int32_t> tokens,
                             const Namespace& ns) const;
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
                                               const Namespace& ns, std::optional<Found> found,
                                               size_t* restored_chunks) {
  if (tokens.empty()) return Status::InvalidArgument("Prefill: empty prompt");
  const uint32_t t = shape_.chunk_tokens;
  PrefillResult r;
  r.prompt_tokens = tokens.size();
  ClearSequence(ctx_, options_.seq_id);

  Clock::time_point t0 = Clock::now();
  if (!found) found = FindCached(tokens, ns);  // at least one token is decoded
  const auto& [keys, partial] = *found;
  r.cached_chunks = keys.size();
  r.lookup_seconds = Since(t0);
  size_t cells = 0;
  if (!keys.empty() || partial) {
    std::string failure;
    cells = restorer_.Restore(keys, partial ? &*partial : nullptr, r, &failure);
    if (!failure.empty()) Fail(r, failure);
  }
  const size_t restored = std::min<size_t>(cells / t, r.cached_chunks);
  r.restored_tokens = cells;
  r.partial_tokens = cells - restored * t;
  r.computed_tokens = tokens.size() - r.restored_tokens;
  const size_t wanted = r.cached_chunks * t + (partial ? partial->cells : 0);
  stats_.Update([&](ConnectorStats& st) {
    ++st.prefills;
    st.prompt_tokens += r.prompt_tokens;
    st.hit_chunks += r.cached_chunks;
    st.restored_chunks += restored;
    st.restored_partial_chunks += r.partial_tokens > 0 ? 1 : 0;
    st.restored_tokens += r.restored_tokens;
    st.computed_tokens += r.computed_tokens;
    st.recomputed_tokens += wanted - r.restored_tokens;
  });
  *restored_chunks = restored;
  return r;
}

CachedPrefix Connector::Impl::ToPublic(const Found& f) const {
  CachedPrefix c;
  c.full_keys = f.keys;
  c.tokens = f.keys.size() * shape_.chunk_tokens;
  if (f.partial) {
    c.partial_key = f.partial->key;
    c.partial_length = f.partial->length;
    c.partial_cells = f.partial->cells;
    c.tokens += f.partial->cells;
  }
  return c;
}

std::optional<Connector::Impl::Found> Connector::Impl::Match(const CachedPrefix& cached,
                                                             std::span<const int32_t> tokens,
                                                             const Namespace& ns) const {
  const uint32_t t = shape_.chunk_tokens;
  const size_t full = cached.full_keys.size();
  if (tokens.empty() || full > (tokens.size() - 1) / t) return std::nullopt;
  Found f{ChainChunkKeys(ns, tokens.first(full * t), t), std::nullopt};
  if (f.keys != cached.full_keys) return std::nullopt;
  size_t cells = 0;
  if (cached.partial_length > 0) {
    const size_t start = full * t;
    const size_t length = cached.partial_length;
    if (!options_.partial_chunks || length >= t || start + length > tokens.size()) {
      return std::nullopt;
    }
    const ChunkKey parent = full == 0 ? ChunkKey{} : f.keys.back();
    if (PartialChunkKey(ns, parent, tokens.subspan(start, length)) != cached.partial_key) {
      return std::nullopt;
    }
    cells = std::min(length, tokens.size() - 1 - start);
    if (cells == 0) return std::nullopt;
    f.partial = PartialChunk{cached.partial_key, full, static_cast<uint32_t>(cells),
                             static_cast<uint32_t>(length)};
  }
  if (cached.tokens != full * t + cells || cached.partial_cells != cells) return std::nullopt;
  return f;
}

Result<PrefillResult> Connector::Impl::Prefill(std::span<const int32_t> tokens) {
  const Clock::time_point start = Clock::now();
  size_t restored = 0;
  KVP_ASSIGN_OR_RETURN(PrefillResult r, Restore(tokens, ns_, std::nullopt, &restored));
  const Clock::time_point t0 = Clock::now();
  Status s = DecodeTokens(ctx_, tokens.subspan(r.restored_tokens),
                          static_cast<int32_t>(r.restored_tokens), options_.seq_id, true);
  r.decode_seconds = Since(t0);
  r.ttft_seconds = Since(start);
  if (!s.ok()) return s;
  if (options_.offload) {
    Result<size_t> queued = Offload(tokens, ns_, restored, 0, &r.snapshot_seconds);
    if (queued.ok()) r.offload_chunks = *queued;
  }
  return r;
}

Result<size_t> Connector::Impl::Offload(std::span<const int32_t> tokens, const Namespace& ns,
                                        size_t first, size_t prompt_end,
                                        double* snapshot_seconds) {
  const uint32_t t = shape_.chunk_tokens;
  std::vector<ChunkKey> keys = ChainChunkKeys(ns, tokens, t);
  std::vector<PartialChunk> partials;
  if (options_.partial_chunks) {
    const size_t ends[2] = {tokens.size(), prompt_end};
    for (PartialChunk& p : PartialChunksAt(ns, tokens, keys, ends, t)) {
      const std::span<const ChunkKey> parents = std::span(keys).first(p.chunk);
      const bool stored = pool_.FindChild(parents, {&p.key, 1}) == 0;
      if (!stored) partials.push_back(p);
    }
  }
  // Chunks the pool already holds (a prefix) are not copied out again.
  const size_t held = keys.size() <= first ? keys.size() : pool_.Lookup(keys);
  first = std::max(first, held);
  if (first >= keys.size() && partials.empty()) return size_t{0};  // nothing new
  Clock::time_point t0 = Clock::now();
  Result<Snapshot> snap = TakeSnapshot(ctx_, options_.seq_id, &blobs_);
  if (snapshot_seconds != nullptr) *snapshot_seconds = Since(t0);
  Status bad;
  if (!snap.ok()) {
    bad = snap.status().WithContext("snapshot");
  } else if (!(snap->state.format == format_)) {
    bad = Status::Corruption("snapshot: the state format differs from the one probed at Create");
  } else if (snap->state.cells < (partials.empty() ? keys.size() * t : tokens.size()) ||
             !snap->state.PositionsAreCellIndices()) {
    bad = Status::InvalidArgument("snapshot: the sequence does not hold tokens 0.." +
                                  std::to_string(tokens.size() - 1) + " in cells 0.. in order");
  }
  if (!bad.ok()) {
    Skip(bad.ToString());
    return bad;
  }
  const size_t handed_over = keys.size() - std::min(first, keys.size());
  if (!offloader_.Submit(std::move(*snap), std::move(keys), first, std::move(partials))) {
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
  return impl_->Restore(tokens, impl_->NamespaceFor(tenant_salt), std::nullopt, &restored);
}
Result<PrefillResult> Connector::Restore(std::span<const int32_t> tokens,
                                        std::string_view tenant_salt, const CachedPrefix& cached) {
  size_t restored = 0;
  const Namespace ns = impl_->NamespaceFor(tenant_salt);
  return impl_->Restore(tokens, ns, impl_->Match(cached, tokens, ns), &restored);
}
CachedPrefix Connector::FindCached(std::span<const int32_t> tokens,
                                   std::string_view tenant_salt) const {
  return impl_->ToPublic(impl_->FindCached(tokens, impl_->NamespaceFor(tenant_salt)));
}
size_t Connector::CachedTokens(std::span<const int32_t> tokens,
                               std::string_view tenant_salt) const {
  return FindCached(tokens, tenant_salt).tokens;
}
Result<size_t> Connector::Offload(std::span<const int32_t> tokens) {
  return impl_->Offload(tokens, impl_->ns(), 0, 0, nullptr);
}
Result<size_t> Connector::Offload(std::span<const int32_t> tokens, std::string_view tenant_salt,
                                  size_t prompt_tokens) {
  return impl_->Offload(tokens, impl_->NamespaceFor(tenant_salt), 0, prompt_tokens, nullptr);
}
void Connector::Flush() { impl_->Flush(); }
ConnectorStats Connector::Stats() const { return impl_->Stats(); }
const ModelShape& Connector::shape() const { return impl_->shape(); }
const Namespace& Connector::ns() const { return impl_->ns(); }

}  // namespace kvpool::llama
