#include "serve_bench_trace.h"

#include <cmath>
#include <set>

#include "llama/engine.h"
#include "seeded_rng.h"

namespace kvpool::cli {
namespace {

// Trace values: a salt of this trace's own, then the parts.
uint64_t Mix(std::initializer_list<uint64_t> parts) { return MixParts(0x6a09e667f3bcc908ull, parts); }

// Document of popularity rank r + 1 is document r.
uint32_t ZipfDocument(uint32_t documents, double s, double u) {
  double total = 0;
  for (uint32_t r = 0; r < documents; ++r) total += 1.0 / std::pow(double(r + 1), s);
  double cumulative = 0;
  for (uint32_t r = 0; r + 1 < documents; ++r) {
    cumulative += 1.0 / std::pow(double(r + 1), s) / total;
    if (u < cumulative) return r;
  }
  return documents - 1;
}

struct OpenSession {
  uint32_t doc, session, turns_done;
};

std::string Question(const ServeTraceOptions& o, const ServeTraceRequest& r, uint32_t turn) {
  std::string words = SyntheticDocument(o.question_words, Mix({2, o.seed, r.session, turn}));
  while (!words.empty() && (words.back() == ' ' || words.back() == '.')) words.pop_back();
  return "Question " + std::to_string(turn + 1) + ": what does the document say about " + words +
         "?";
}

std::string Answer(const ServeTraceOptions& o, const ServeTraceRequest& r, uint32_t turn) {
  return "The document says " + SyntheticDocument(o.answer_words, Mix({3, o.seed, r.session, turn}));
}

}  // namespace

std::vector<ServeTraceRequest> MakeServeTrace(const ServeTraceOptions& o) {
  SeededRng rng(o.seed);
  std::vector<OpenSession> open;
  std::set<uint32_t> visited;
  std::vector<ServeTraceRequest> trace;
  uint32_t sessions = 0;
  for (uint32_t i = 0; i < o.requests; ++i) {
    size_t pick;
    if (open.empty() || rng.Uniform() < o.new_session) {
      open.push_back({ZipfDocument(o.documents, o.zipf, rng.Uniform()), sessions++, 0});
      pick = open.size() - 1;
    } else {
      pick = rng.Next() % open.size();
    }
    OpenSession& s = open[pick];
    trace.push_back({s.doc, s.session, s.turns_done, visited.insert(s.doc).second});
    if (++s.turns_done == o.turns) open.erase(open.begin() + static_cast<std::ptrdiff_t>(pick));
  }
  return trace;
}

std::string ServeDocumentText(const ServeTraceOptions& o, uint32_t doc) {
  return SyntheticDocument(o.doc_words, Mix({1, o.seed, doc}));
}

nlohmann::json ServeMessages(const ServeTraceOptions& o, const ServeTraceRequest& r,
                             const std::string& document) {
  nlohmann::json m = nlohmann::json::array();
  m.push_back({{"role", "system"},
               {"content", "You answer questions about the document the user gives."}});
  m.push_back({{"role", "user"},
               {"content", "Document " + std::to_string(r.doc) + ":\n" + document + "\n\n" +
                               Question(o, r, 0)}});
  for (uint32_t t = 1; t <= r.turn; ++t) {
    m.push_back({{"role", "assistant"}, {"content", Answer(o, r, t - 1)}});
    m.push_back({{"role", "user"}, {"content", Question(o, r, t)}});
  }
  return m;
}

uint32_t DocumentsVisited(const std::vector<ServeTraceRequest>& trace) {
  std::set<uint32_t> docs;
  for (const ServeTraceRequest& r : trace) docs.insert(r.doc);
  return static_cast<uint32_t>(docs.size());
}

}  // namespace kvpool::cli
