#include "workload_trace.h"

#include <cmath>
#include <unordered_set>

#include "../bench_util.h"
#include "../seeded_rng.h"

namespace kvpool::cli {
namespace {

// Trace values: a salt of this trace's own, then the parts.
uint64_t Mix(std::initializer_list<uint64_t> parts) { return MixParts(0x243f6a8885a308d3ull, parts); }

// Cumulative Zipf weights over document ranks 1..n.
std::vector<double> ZipfCdf(uint32_t n, double s) {
  std::vector<double> cdf(n);
  double sum = 0;
  for (uint32_t r = 0; r < n; ++r) cdf[r] = sum += 1.0 / std::pow(double(r + 1), s);
  for (double& c : cdf) c /= sum;
  return cdf;
}

uint32_t Sample(const std::vector<double>& cdf, double u) {
  uint32_t i = 0;
  while (i + 1 < cdf.size() && cdf[i] <= u) ++i;
  return i;
}

}  // namespace

std::vector<Request> MakeTrace(const TraceOptions& o) {
  SeededRng rng(o.seed);
  std::vector<double> cdf = ZipfCdf(o.documents, o.zipf);
  std::vector<std::vector<uint32_t>> turns_done(o.documents);  // per doc, per session
  std::vector<Request> trace;
  for (uint32_t i = 0; i < o.requests; ++i) {
    uint32_t doc = Sample(cdf, rng.Uniform());
    std::vector<uint32_t> open;
    for (uint32_t s = 0; s < turns_done[doc].size(); ++s) {
      if (turns_done[doc][s] < o.turns) open.push_back(s);
    }
    uint32_t session;
    if (open.empty() || rng.Uniform() < o.new_session) {
      session = static_cast<uint32_t>(turns_done[doc].size());
      turns_done[doc].push_back(0);
    } else {
      session = open[rng.Next() % open.size()];
    }
    trace.push_back({doc, session, turns_done[doc][session]++});
  }
  return trace;
}

int32_t TokenAt(const TraceOptions& o, uint32_t doc, uint32_t session, uint64_t position) {
  uint64_t h = position < o.doc_tokens ? Mix({1, doc, position}) : Mix({2, doc, session, position});
  return static_cast<int32_t>(h % 32000);
}

Prompt::Prompt(const TraceOptions& o, const ModelShape& shape, const Request& r)
    : o_(o), r_(r), chunk_tokens_(shape.chunk_tokens) {
  std::vector<int32_t> tokens(uint64_t{o.doc_tokens} + uint64_t{r.turn + 1} * o.turn_tokens);
  for (size_t p = 0; p < tokens.size(); ++p) tokens[p] = TokenAt(o, r.doc, r.session, p);
  keys_ = ChainChunkKeys(Namespace::Make(shape.Fingerprint(), "workload"), tokens, chunk_tokens_);
}

uint64_t Prompt::ChunkSeed(size_t c) const {
  uint64_t end = uint64_t{c + 1} * chunk_tokens_;  // one past the chunk's last token
  if (end <= o_.doc_tokens) return Mix({1, r_.doc, c});
  uint64_t turn = (end - 1 - o_.doc_tokens) / o_.turn_tokens;
  return Mix({2, r_.doc, r_.session, turn, c});
}

void Prompt::FillSegment(size_t c, uint32_t layer, std::byte* out, size_t bytes) const {
  FillPattern(out, bytes, Mix({ChunkSeed(c), layer}));
}

size_t WorkingSetChunks(const TraceOptions& o, const ModelShape& shape,
                        const std::vector<Request>& trace) {
  std::unordered_set<ChunkKey, ChunkKeyHash> seen;
  for (const Request& r : trace) {
    Prompt prompt(o, shape, r);
    seen.insert(prompt.keys().begin(), prompt.keys().end());
  }
  return seen.size();
}

}  // namespace kvpool::cli
