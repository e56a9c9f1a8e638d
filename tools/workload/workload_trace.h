// The multi-turn workload of `kvpool bench workload`: sessions over shared
// documents with Zipf popularity. Everything is a pure function of the
// options: the trace, every token id and every KV byte, so that each byte a
// system returns can be checked against what was stored.
//
// A request continues one session of one document: its prompt is the
// document's tokens followed by the session's turns 0..turn (the turn's own
// new tokens last). Only full chunks are keyed and stored.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <kvpool/kvpool.h>

namespace kvpool::cli {

struct TraceOptions {
  uint32_t documents = 10;
  uint32_t doc_tokens = 8192;       // tokens per document
  uint32_t turns = 4;               // turns per session, then it ends
  uint32_t turn_tokens = 512;       // tokens a turn adds to the prompt
  double zipf = 1.0;                // document popularity: P(rank r) ~ 1 / r^zipf
  double new_session = 0.25;        // chance a request starts a session when one is open
  uint32_t requests = 120;
  uint64_t seed = 1;
};

struct Request {
  uint32_t doc = 0;
  uint32_t session = 0;  // per document, in order of creation
  uint32_t turn = 0;     // 0 = the session's first request
};

// The requests, in order. Deterministic from `o`.
std::vector<Request> MakeTrace(const TraceOptions& o);

// Prompt of a request and what it means for KV: the chunk keys of its full
// chunks, and the seed of each chunk's KV bytes.
class Prompt {
 public:
  Prompt(const TraceOptions& o, const ModelShape& shape, const Request& r);

  const std::vector<ChunkKey>& keys() const { return keys_; }
  size_t chunks() const { return keys_.size(); }
  // Seed of chunk c's KV: from (document, chunk) for chunks inside the
  // document (shared by every session), else from (document, session, turn
  // of the chunk's last token, chunk).
  uint64_t ChunkSeed(size_t c) const;
  // Fills segment (chunk c, layer l) with its deterministic bytes.
  void FillSegment(size_t c, uint32_t layer, std::byte* out, size_t bytes) const;

 private:
  TraceOptions o_;
  Request r_;
  uint32_t chunk_tokens_;
  std::vector<ChunkKey> keys_;
};

// Token id at `position` of a prompt of session (doc, session).
int32_t TokenAt(const TraceOptions& o, uint32_t doc, uint32_t session, uint64_t position);

// Distinct chunks the whole trace stores (its working set), by key.
size_t WorkingSetChunks(const TraceOptions& o, const ModelShape& shape,
                        const std::vector<Request>& trace);

}  // namespace kvpool::cli
