// kvpool_llama.h: llama.cpp's prefix KV in a kvpool Pool.
//
// A Connector serves one sequence of one llama_context from a Pool shared by
// any number of connectors. Prefill(tokens) restores the longest prefix of
// `tokens` whose KV the pool holds into the sequence, decodes only the rest,
// and then stores the prompt's new KV in the background:
//
//   kvpool::PoolOptions po = ...;                      // devices
//   po.shape = *kvpool::llama::Connector::KvShape(ctx, 256);
//   auto pool = kvpool::Pool::Open(po);
//   auto conn = kvpool::llama::Connector::Create(ctx, **pool, {.model_path = gguf});
//   auto r = (*conn)->Prefill(tokens);                 // logits of the last token ready
//   // r->restored_tokens came from the pool, r->computed_tokens were decoded
//
// How: the sequence's KV is taken out and put back with
// llama_state_seq_get_data / llama_state_seq_set_data. The blob's cells are
// cut into chunks and each chunk's K and V rows of each layer are pool
// segments (kv_layout.h), so that the pool places them over its devices by
// bandwidth and reads them back in parallel, straight into a blob for
// llama.cpp (with transposed V, through a staging buffer). Chunk keys live
// in a namespace made from the model file's fingerprint, the KV cache's
// types and layout and the tenant salt: another model or KV type is a miss,
// never wrong KV.
//
// Partial chunks: a sequence's last cells that do not fill a chunk are
// stored too, as a "partial chunk" hanging from its last full chunk, so that
// a restore reaches the token (the same prompt again: all but its last
// token), not only the last full chunk. Each costs one chunk of pool space
// and a restore one more query (Pool::FindChild, partial_chunk.h).
//
// Failures never fail a Prefill that llama.cpp itself can do: a pool that is
// full, a device that fails or a blob llama.cpp rejects means the tokens are
// recomputed, PrefillResult::fallback says why and ConnectorStats counts it.
//
// Thread-safety: a Connector is used by the thread that drives its
// llama_context (Prefill, Flush); Stats() may be called from any thread.
// Lifetime: the context and the pool must outlive the connector.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <kvpool/kvpool.h>

struct llama_context;  // llama.h

namespace kvpool::llama {

struct ConnectorOptions {
  // The GGUF file the context's model was loaded from; every byte of it is
  // hashed (XXH3-64) at Create. Required unless model_fingerprint is set.
  std::string model_path;
  // A fingerprint the caller already has (e.g. FingerprintModelFile of the
  // same file, cached). Default: 0 = hash model_path.
  uint64_t model_fingerprint = 0;
  // Isolates tenants: mixed into the namespace. Default: "".
  std::string tenant_salt;
  // The sequence of the context this connector serves. Default: 0.
  int32_t seq_id = 0;
  // Store the prompt's new KV after each Prefill. Default: true.
  bool offload = true;
  // Store and restore partial chunks (above). Default: true; false restores
  // and stores whole chunks only.
  bool partial_chunks = true;
  // Bytes of snapshots queued for the background writer; a snapshot that
  // would exceed it is not stored (offload_skipped). Default: 0 = unbounded.
  size_t max_pending_offload_bytes = 0;
  // Allocate and touch, at Create, the restore buffers for this many tokens
  // (their KV bytes; twice that with transposed V), so that the first
  // restore does not pay for page faults on fresh memory. Default: 0 = grow
  // on demand (then kept).
  size_t reserve_tokens = 0;
};

// Bytes one device delivered to a restore.
struct SourceDevice {
  std::string name;
  std::string kind;  // "dram", "file", "extent", ...
  uint64_t bytes = 0;
  uint64_t segments = 0;
};

struct PrefillResult {
  size_t prompt_tokens = 0;
  size_t cached_chunks = 0;           // full chunks Lookup found for this prompt
  size_t restored_tokens = 0;         // tokens whose KV came from the pool
  size_t partial_tokens = 0;          // of which from a partial chunk
  size_t computed_tokens = 0;         // tokens decoded by llama.cpp
  std::vector<SourceDevice> sources;  // devices that served the restore
  double lookup_seconds = 0;
  double retrieve_seconds = 0;  // pool -> blob or staging (parallel over devices)
  double assemble_seconds = 0;  // segments -> llama.cpp state blob
  // Bytes the connector copied between the pool's buffer and llama.cpp's
  // blob: 0 when segments land in the blob (V rows, flash attention on), the
  // restored KV when they go through staging (V transposed), more after a
  // short read.
  size_t assembled_bytes = 0;
  double restore_seconds = 0;   // llama_state_seq_set_data
  double decode_seconds = 0;    // llama_decode of the uncached tokens
  double ttft_seconds = 0;      // call to the last token's logits being ready
  double snapshot_seconds = 0;  // after TTFT: llama_state_seq_get_data for offload
  size_t offload_chunks = 0;    // full chunks handed to the background writer
  std::string fallback;         // empty, or why cached tokens were recomputed

  // Time to bring the cached prefix into the context.
  double load_seconds() const { return retrieve_seconds + assemble_seconds + restore_seconds; }
};

// What the pool holds of a prompt (Connector::FindCached): the keys of the
// full chunks present, and the partial chunk after them. Restore can take
// it instead of searching the pool again. It is only a hint: Restore checks
// it against the prompt and the tenant (hashes, no pool query) and searches
// again when it does not match, and a chunk evicted in between is
// recomputed, so a stale or foreign one costs time, never wrong KV.
struct CachedPrefix {
  size_t tokens = 0;                // what Restore would restore
  std::vector<ChunkKey> full_keys;  // full chunks present, from the first
  ChunkKey partial_key;             // the partial chunk after them (zero: none)
  uint32_t partial_length = 0;      // tokens it holds (0: none)
  uint32_t partial_cells = 0;       // of which the prompt uses (all but its last token)
};

struct ConnectorStats {
  uint64_t prefills = 0;
  uint64_t prompt_tokens = 0;
  uint64_t restored_tokens = 0;
  uint64_t computed_tokens = 0;
  uint64_t hit_chunks = 0;         // full chunks found by Lookup
  uint64_t restored_chunks = 0;    // full chunks put into the context
  uint64_t restored_partial_chunks = 0;  // partial chunks put into the context
  uint64_t restore_failures = 0;   // retrieve errors, short reads, rejected blobs
  uint64_t recomputed_tokens = 0;  // cached tokens decoded again after a failure
  uint64_t offload_jobs = 0;
  uint64_t offloaded_chunks = 0;  // full chunks newly stored by the pool
  uint64_t offloaded_partial_chunks = 0;
  uint64_t offload_failures = 0;  // jobs the pool refused or failed (full, I/O error)
  uint64_t offload_skipped = 0;   // snapshots not stored (see last_error)
  std::string last_error;         // the latest failure, for logs
};

class Connector {
 public:
  // The ModelShape a Pool must be opened with to hold this context's KV in
  // chunks of `chunk_tokens`. With V rows (flash attention on) and K and V
  // rows of one size: layers = 2 x n_layer, a segment = one chunk's K (or V)
  // rows of one layer. Otherwise: layers = n_layer, a segment = K and V bytes
  // of one chunk of one layer as llama.cpp's state holds them.
  // Learns llama.cpp's state format from a snapshot of `seq_id` (when the
  // sequence is empty: after decoding one token into it, removed again).
  // Errors: Unsupported for KV layouts the connector cannot cut (see
  // state_format.h), Corruption when the state does not parse.
  static Result<ModelShape> KvShape(llama_context* ctx, uint32_t chunk_tokens, int32_t seq_id = 0);

  // Probes the state format like KvShape, checks that `pool` was opened with
  // a matching shape (InvalidArgument naming both otherwise) and hashes the
  // model file (IOError naming it).
  static Result<std::unique_ptr<Connector>> Create(llama_context* ctx, Pool& pool,
                                                   const ConnectorOptions& options);

  ~Connector();  // waits for background offloads
  Connector(const Connector&) = delete;
  Connector& operator=(const Connector&) = delete;

  // Replaces the sequence's content with `tokens` (positions 0..n-1): restores
  // the longest cached prefix (leaving at least one token to decode), decodes
  // the rest in llama_n_batch pieces with logits for the
  // last token only (llama_get_logits_ith(ctx, -1)), then, if enabled, takes
  // a snapshot and stores the new chunks (and the partial one at the end) in
  // the background.
  // Errors: InvalidArgument (empty prompt), NoSpace (n_ctx too small),
  // Aborted (llama_decode failed). Pool problems are never errors here.
  Result<PrefillResult> Prefill(std::span<const int32_t> tokens);

  // Restore only, for engines that decode the rest themselves (e.g. in a
  // batch shared with other sequences): clears the sequence, then restores
  // the longest cached prefix of `tokens`, leaving at least one token, in
  // the namespace of `tenant_salt` (ConnectorOptions's salt is
  // not used). The result's computed_tokens are the ones left to decode, at
  // positions restored_tokens..; decode_seconds and ttft_seconds stay 0.
  // Errors: InvalidArgument (empty prompt). Pool problems are never errors.
  Result<PrefillResult> Restore(std::span<const int32_t> tokens, std::string_view tenant_salt);
  // The same, with what FindCached(tokens, tenant_salt) found a moment ago,
  // so that the pool is not searched twice (an engine that first decides
  // between its own cache and the pool, then restores). `cached` is checked
  // against `tokens` and `tenant_salt` first; when it does not match, the
  // pool is searched as above.
  Result<PrefillResult> Restore(std::span<const int32_t> tokens, std::string_view tenant_salt,
                                const CachedPrefix& cached);
  // What the pool holds of `tokens` now, all but the last token: one pool
  // Lookup and one Pool::FindChild for a partial chunk. Thread-safe.
  CachedPrefix FindCached(std::span<const int32_t> tokens, std::string_view tenant_salt) const;
  // FindCached(tokens, tenant_salt).tokens: what Restore(tokens,
  // tenant_salt) would restore if called now. Thread-safe.
  size_t CachedTokens(std::span<const int32_t> tokens, std::string_view tenant_salt) const;

  // Stores the full chunks of `tokens`, which the sequence holds at
  // positions 0..n-1 (e.g. after Prefill and generation), and the partial
  // chunk at its end, in the background: takes a snapshot now
  // (llama_state_seq_get_data), cuts and writes it on the connector's
  // thread. Returns the number of full chunks handed over (0 when the pool
  // has them all; a partial chunk may still have been). Errors (also counted as offload_skipped): Corruption
  // when the snapshot does not parse, InvalidArgument when the sequence does
  // not hold those tokens in cell order.
  Result<size_t> Offload(std::span<const int32_t> tokens);
  // The same in the namespace of `tenant_salt`; with `prompt_tokens` (0 <
  // prompt_tokens < tokens.size(): a prompt followed by its generated
  // tokens) also the partial chunk at the prompt's end, so that the same
  // prompt sent again is restored to its last token.
  Result<size_t> Offload(std::span<const int32_t> tokens, std::string_view tenant_salt,
                         size_t prompt_tokens = 0);

  // Blocks until every background offload finished.
  void Flush();

  ConnectorStats Stats() const;
  const ModelShape& shape() const;
  const Namespace& ns() const;

  class Impl;

 private:
  explicit Connector(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// XXH3-64 of every byte of a file (a GGUF model). Errors: IOError naming it.
Result<uint64_t> FingerprintModelFile(const std::string& path);

// Decodes `tokens` at positions pos0.. into sequence `seq_id` in pieces of
// llama_n_batch(ctx) tokens; only the very last token gets logits when
// `logits_last`. Errors: NoSpace (no KV slot: n_ctx too small), Aborted.
Status DecodeTokens(llama_context* ctx, std::span<const int32_t> tokens, int32_t pos0,
                    int32_t seq_id, bool logits_last = true);

}  // namespace kvpool::llama
