// The trace of `kvpool bench serve`: multi-turn chat sessions about shared
// documents with Zipf popularity, as OpenAI chat messages. A pure function
// of its options, so that every server sees the identical requests.
//
// A session is about one document and lasts `turns` requests. Its request of
// turn t sends [system, user: document + question 0, assistant: answer 0,
// user: question 1, ..., user: question t]: the prompt of turn t+1 extends
// the prompt of turn t. The answers are fixed synthetic text, not what a
// server generated, so the prompts do not depend on the server.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kvpool::cli {

struct ServeTraceOptions {
  uint32_t documents = 24;
  uint32_t doc_words = 1800;     // words per document (see WordsForTokens)
  uint32_t turns = 4;            // requests per session, then it ends
  double zipf = 1.0;             // document popularity: P(rank r) ~ 1 / r^zipf
  double new_session = 0.35;     // chance a request starts a session when one is open
  uint32_t requests = 80;        // in the whole trace (both phases)
  uint32_t question_words = 12;
  uint32_t answer_words = 24;
  uint64_t seed = 1;
};

// One request: turn `turn` of session `session` (numbered over the whole
// trace in order of creation) about document `doc`.
struct ServeTraceRequest {
  uint32_t doc = 0;
  uint32_t session = 0;
  uint32_t turn = 0;
  bool first_visit = false;  // no earlier request of the trace was about `doc`
};

// The requests, in order. Deterministic from `o`.
std::vector<ServeTraceRequest> MakeServeTrace(const ServeTraceOptions& o);

// The text of document `doc` (English-like words, deterministic).
std::string ServeDocumentText(const ServeTraceOptions& o, uint32_t doc);

// The chat messages of request `r`; `document` is ServeDocumentText(o, r.doc).
nlohmann::json ServeMessages(const ServeTraceOptions& o, const ServeTraceRequest& r,
                             const std::string& document);

// Distinct documents the trace visits.
uint32_t DocumentsVisited(const std::vector<ServeTraceRequest>& trace);

}  // namespace kvpool::cli
