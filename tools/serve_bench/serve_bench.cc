#include "serve_bench.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "bench_util.h"
#include "llama/engine.h"
#include "serve_bench_process.h"
#include "serve_bench_report.h"
#include "serve_bench_systems.h"
#include "serve_bench_vocab.h"

namespace kvpool::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// The 1-minute load average (/proc/loadavg): other work on the machine
// slows both servers down.
double LoadAverage() {
  std::ifstream in("/proc/loadavg");
  double load = 0;
  in >> load;
  return load;
}

// Everything every system is given: the model and the trace.
struct ServeBenchWorkload {
  std::string model;
  ServeModelFacts facts;
  ServeTraceOptions trace_options;
  std::vector<ServeTraceRequest> trace;
  std::vector<std::string> documents;  // text of each document
  size_t restart_at = 0;               // first request after the restart
};

ServeTraceOptions TraceOptionsOf(const ServeBenchOptions& o, uint32_t doc_words) {
  ServeTraceOptions t;
  t.documents = o.documents;
  t.doc_words = doc_words;
  t.turns = o.turns;
  t.zipf = o.zipf;
  t.new_session = o.new_session;
  t.requests = o.requests;
  t.seed = o.seed;
  return t;
}

Result<ServeBenchWorkload> MakeWorkload(const ServeBenchOptions& o) {
  ServeBenchWorkload w;
  KVP_ASSIGN_OR_RETURN(std::string model, EnsureModel(o.model, o.preset, o.models_dir));
  w.model = fs::absolute(model).string();
  KVP_ASSIGN_OR_RETURN(w.facts, ReadServeModelFacts(w.model, o.doc_tokens));
  w.trace_options = TraceOptionsOf(o, w.facts.doc_words);
  w.trace = MakeServeTrace(w.trace_options);
  for (uint32_t d = 0; d < o.documents; ++d) w.documents.push_back(ServeDocumentText(w.trace_options, d));
  w.restart_at = w.trace.size() / 2;
  return w;
}

// The longest prompt must fit the context with the generated tokens: a
// document, its questions and answers, the chat template's markup.
Status CheckContext(const ServeBenchOptions& o, const ServeTraceOptions& t) {
  const uint64_t per_turn = 2 * (t.question_words + t.answer_words) + 40;
  const uint64_t longest = uint64_t{o.doc_tokens} + uint64_t{o.turns} * per_turn + 64 + o.max_tokens;
  if (longest <= o.ctx) return Status::OK();
  return Status::InvalidArgument("--ctx " + std::to_string(o.ctx) + " cannot hold the longest "
                                 "prompt (about " + std::to_string(longest) +
                                 " tokens): raise --ctx or lower --doc-tokens / --turns");
}

nlohmann::json ConfigJson(const ServeBenchOptions& o, const ServeBenchWorkload& w) {
  const uint64_t working_set = uint64_t{o.documents} * o.doc_tokens * w.facts.kv_bytes_per_token;
  const double dram = double(o.dram_mib) * double(1 << 20);
  return {{"title", "kvpool serve vs llama-server: " + std::to_string(o.documents) + " documents x " +
                        std::to_string(o.doc_tokens) + " tokens, Zipf " + Fixed(o.zipf, 2) +
                        ", DRAM " + std::to_string(o.dram_mib) + " MiB, " +
                        std::to_string(o.threads) + " threads, restart after request " +
                        std::to_string(w.restart_at)},
          {"model", w.model}, {"kv_bytes_per_token", w.facts.kv_bytes_per_token},
          {"documents", o.documents}, {"doc_tokens", o.doc_tokens},
          {"doc_words", w.facts.doc_words}, {"documents_visited", DocumentsVisited(w.trace)},
          {"working_set_bytes", working_set},
          {"working_set_vs_dram", dram > 0 ? double(working_set) / dram : 0},
          {"turns", o.turns}, {"zipf", o.zipf}, {"new_session", o.new_session},
          {"requests", w.trace.size()}, {"restart_at", w.restart_at},
          {"dram_mib", o.dram_mib}, {"disk_mib", o.disk_mib}, {"threads", o.threads},
          {"ctx", o.ctx}, {"max_tokens", o.max_tokens}, {"seed", o.seed},
          {"client", "one streamed request at a time, HTTP/1.1, no keep-alive"},
          {"machine", MachineDescription()}, {"date", NowIso8601()},
          {"load_average_at_start", LoadAverage()}};
}

// Runs requests [begin, end) of the trace against the server on `port`.
ServeBenchPhase RunPhase(const ServeBenchOptions& o, const ServeBenchWorkload& w,
                         const std::string& system, const std::string& name, int port,
                         size_t begin, size_t end) {
  ServeBenchPhase phase;
  phase.phase = name;
  const ServeChatClient client("127.0.0.1", port);
  const std::string model = client.ModelId();  // the name the server answers to
  const Clock::time_point t0 = Clock::now();
  for (size_t i = begin; i < end; ++i) {
    const ServeTraceRequest& r = w.trace[i];
    nlohmann::json body = {{"messages", ServeMessages(w.trace_options, r, w.documents[r.doc])},
                           {"max_tokens", o.max_tokens},
                           {"temperature", 0}};
    if (!model.empty()) body["model"] = model;
    ServeBenchRequestRecord record{static_cast<uint32_t>(i), r, client.Chat(std::move(body))};
    const ServeChatSample& s = record.sample;
    std::fprintf(stderr, "%s %s %zu/%zu doc %u turn %u%s: TTFT %.3f s, cached %llu/%llu%s%s\n",
                 system.c_str(), name.c_str(), i - begin + 1, end - begin, r.doc, r.turn,
                 r.first_visit ? " (first visit)" : "", s.ttft_seconds,
                 static_cast<unsigned long long>(s.cached_tokens),
                 static_cast<unsigned long long>(s.prompt_tokens), s.ok() ? "" : " ERROR: ",
                 s.error.c_str());
    phase.requests.push_back(std::move(record));
  }
  phase.wall_seconds = SecondsSince(t0);
  return phase;
}

// The probe documents: the trace's most popular, whose first-turn prompt is
// sent, then another's (so that the slot holds something else), then the
// first again: its TTFT is the cache's restore of the same prompt.
constexpr uint32_t kProbeDocuments = 3;

ServeChatSample ProbeChat(const ServeChatClient& client, const ServeBenchOptions& o,
                          const ServeBenchWorkload& w, uint32_t doc) {
  const ServeTraceRequest r{doc, 1000000 + doc, 0, false};
  nlohmann::json body = {{"messages", ServeMessages(w.trace_options, r, w.documents[doc])},
                         {"max_tokens", o.max_tokens},
                         {"temperature", 0}};
  const std::string model = client.ModelId();
  if (!model.empty()) body["model"] = model;
  return client.Chat(std::move(body));
}

void Record(const ServeChatSample& s, ServeBenchProbe* probe) {
  if (!s.ok()) return;
  probe->ttft_seconds.push_back(s.ttft_seconds);
  probe->computed_tokens.push_back(s.prompt_tokens - std::min(s.cached_tokens, s.prompt_tokens));
}

ServeBenchProbe RunHitProbe(const ServeBenchOptions& o, const ServeBenchWorkload& w, int port) {
  const ServeChatClient client("127.0.0.1", port);
  ServeBenchProbe hits;
  const uint32_t n = std::min<uint32_t>(kProbeDocuments, o.documents / 2);
  for (uint32_t d = 0; d < n; ++d) {
    ProbeChat(client, o, w, d);
    ProbeChat(client, o, w, d + n);
    Record(ProbeChat(client, o, w, d), &hits);
  }
  return hits;
}

ServeBenchProbe RunRestartProbe(const ServeBenchOptions& o, const ServeBenchWorkload& w,
                                int port) {
  const ServeChatClient client("127.0.0.1", port);
  ServeBenchProbe restarted;
  const uint32_t n = std::min<uint32_t>(kProbeDocuments, o.documents / 2);
  for (uint32_t d = 0; d < n; ++d) Record(ProbeChat(client, o, w, d), &restarted);
  return restarted;
}

// Starts the server of `spec` on a fresh port; returns the port.
Result<int> StartServer(const ServeBenchOptions& o, const ServeBenchServerSpec& spec,
                        const std::string& log, ServedProcess* process, double* seconds) {
  const int port = UnusedLocalPort();
  if (port == 0) return Status::IOError("no free TCP port on 127.0.0.1");
  const Clock::time_point t0 = Clock::now();
  KVP_RETURN_IF_ERROR(process->Start(spec.argv(port), log, port, o.start_timeout_seconds));
  *seconds = SecondsSince(t0);
  std::fprintf(stderr, "%s: ready on port %d after %.1f s\n", spec.name.c_str(), port, *seconds);
  return port;
}

std::string Joined(const std::vector<std::string>& argv) {
  std::string s;
  for (const std::string& a : argv) s += (s.empty() ? "" : " ") + a;
  return s;
}

// Phase 1, SIGTERM and a restart (page cache dropped when permitted), phase 2.
Result<ServeBenchSystemRun> RunSystem(const ServeBenchOptions& o, const ServeBenchWorkload& w,
                                      const ServeBenchServerSpec& spec) {
  ServeBenchSystemRun run{spec.name, spec.description, Joined(spec.argv(0)), "", "", 0, {}};
  std::error_code ec;
  if (!spec.cache_dir.empty()) {  // a cold cache for the first phase
    fs::remove_all(spec.cache_dir, ec);
    fs::create_directories(spec.cache_dir, ec);
  }
  const std::string log = (fs::path(o.dir) / (spec.name + ".log")).string();
  fs::remove(log, ec);
  const char* names[2] = {"before restart", "after restart"};
  const size_t bounds[3] = {0, w.restart_at, w.trace.size()};
  for (int p = 0; p < 2; ++p) {
    ServedProcess process;
    double start_seconds = 0;
    KVP_ASSIGN_OR_RETURN(int port, StartServer(o, spec, log, &process, &start_seconds));
    run.phases.push_back(RunPhase(o, w, spec.name, names[p], port, bounds[p], bounds[p + 1]));
    run.phases.back().start_seconds = start_seconds;
    if (p == 1) run.probe_hit = RunHitProbe(o, w, port);
    const Clock::time_point t0 = Clock::now();
    (p == 0 ? run.first_exit : run.last_exit) = process.Stop(o.stop_grace_seconds);
    if (p == 0) run.stop_seconds = SecondsSince(t0);
    std::fprintf(stderr, "%s: stopped (%s) in %.1f s\n", spec.name.c_str(),
                 (p == 0 ? run.first_exit : run.last_exit).c_str(), SecondsSince(t0));
    if (!DropCachesGlobal()) {
      std::fprintf(stderr, "%s: page cache not dropped (not root)\n", spec.name.c_str());
    }
  }
  ServedProcess process;  // the restart probe: a fresh process again
  double start_seconds = 0;
  KVP_ASSIGN_OR_RETURN(int port, StartServer(o, spec, log, &process, &start_seconds));
  run.probe_restart = RunRestartProbe(o, w, port);
  process.Stop(o.stop_grace_seconds);
  return run;
}

Result<std::vector<ServeBenchServerSpec>> Specs(const ServeBenchOptions& o, const std::string& model) {
  std::vector<ServeBenchServerSpec> specs;
  for (const std::string& name : o.systems) {
    if (name == "kvpool") {
      specs.push_back(KvpoolServeSpec(o, model));
    } else if (name == "llama-server") {
      KVP_ASSIGN_OR_RETURN(std::string binary, FindLlamaServer(o.llama_server));
      specs.push_back(LlamaServerSpec(o, binary, model));
    } else {
      return Status::InvalidArgument("unknown system '" + name + "' (llama-server, kvpool)");
    }
  }
  if (specs.empty()) return Status::InvalidArgument("--systems: none given");
  return specs;
}

int Fail(const Status& s, int code) {
  std::fprintf(stderr, "kvpool bench serve: %s\n", s.ToString().c_str());
  return code;
}

}  // namespace

int RunServeBench(const ServeBenchOptions& o) {
  // Found before the model is made: a missing binary is reported at once.
  Result<std::vector<ServeBenchServerSpec>> specs = Specs(o, "");
  if (!specs.ok()) return Fail(specs.status(), 2);
  Result<ServeBenchWorkload> workload = MakeWorkload(o);
  if (!workload.ok()) return Fail(workload.status(), 1);
  const ServeBenchWorkload& w = *workload;
  if (Status s = CheckContext(o, w.trace_options); !s.ok()) return Fail(s, 2);
  specs = Specs(o, w.model);
  if (!specs.ok()) return Fail(specs.status(), 2);
  std::error_code ec;
  fs::create_directories(o.dir, ec);

  ServeBenchReport report;
  report.config = ConfigJson(o, w);
  std::fprintf(stderr, "%s; working set %.2f GiB = %.1fx DRAM, %u of %u documents visited\n",
               report.config["title"].get<std::string>().c_str(),
               report.config["working_set_bytes"].get<double>() / double(1ull << 30),
               report.config["working_set_vs_dram"].get<double>(), DocumentsVisited(w.trace),
               o.documents);
  const Clock::time_point t0 = Clock::now();
  for (const ServeBenchServerSpec& spec : *specs) {
    Result<ServeBenchSystemRun> run = RunSystem(o, w, spec);
    if (!run.ok()) return Fail(run.status(), 1);
    report.systems.push_back(std::move(*run));
  }
  report.config["bench_seconds"] = SecondsSince(t0);
  report.config["load_average_at_end"] = LoadAverage();
  std::printf("\n%s", report.Table().c_str());
  for (const std::string& path : report.Write(o.out)) std::printf("wrote %s\n", path.c_str());
  return 0;
}

}  // namespace kvpool::cli
