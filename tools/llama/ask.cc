#include "ask.h"

#include <cstdio>
#include <fstream>
#include <sstream>

#include "bench_util.h"
#include "engine.h"
#include "kvpool_llama.h"
#include "llama_pools.h"

namespace kvpool::cli {
namespace {

Result<std::string> ReadText(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::IOError("cannot read document '" + path + "'");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The default pool: one extent device (persistent: a later run restores the
// document), plus a DRAM region when asked for.
PoolOptions DefaultPool(const AskOptions& o) {
  PoolOptions p;
  p.state_dir = o.state_dir;
  p.probe_mib = 32;
  if (o.dram_mib > 0) {
    DeviceOptions d;
    d.name = "dram0";
    d.kind = DeviceKind::kDram;
    d.capacity_bytes = RoundUp(o.dram_mib << 20, 1 << 20);
    p.devices.push_back(d);
  }
  DeviceOptions e;
  e.name = "ssd0";
  e.kind = DeviceKind::kExtent;
  e.path = o.state_dir + "/ssd0.extent";
  e.capacity_bytes = RoundUp(o.ssd_mib << 20, 64 << 20);
  p.devices.push_back(e);
  return p;
}

std::string Sources(const llama::PrefillResult& r) {
  std::string s;
  for (const llama::SourceDevice& d : r.sources) {
    s += (s.empty() ? "" : ", ") + d.name + " (" + d.kind + ") " +
         Fixed(double(d.bytes) / (1 << 20), 1) + " MiB in " + std::to_string(d.segments) +
         " segments";
  }
  return s.empty() ? "none" : s;
}

Status AskOne(const LlamaEngine& engine, llama_context* ctx, llama::Connector& conn,
              const std::vector<int32_t>& doc, const std::string& question, int n, int index) {
  std::vector<int32_t> prompt = doc;
  std::vector<int32_t> q = engine.Tokenize("\nQuestion: " + question + "\nAnswer:", false);
  prompt.insert(prompt.end(), q.begin(), q.end());
  KVP_ASSIGN_OR_RETURN(llama::PrefillResult r, conn.Prefill(prompt));
  KVP_ASSIGN_OR_RETURN(std::vector<int32_t> out,
                       engine.Generate(ctx, static_cast<int32_t>(prompt.size()), n));
  std::string text;
  for (int32_t t : out) text += engine.Piece(t);
  std::printf("\nquestion %d: %s\n", index, question.c_str());
  std::printf("  prompt %zu tokens (document %zu + question %zu)\n", prompt.size(), doc.size(),
              q.size());
  std::printf(
      "  TTFT %.3f s: %zu tokens from the pool, %zu computed (load %.3f s, decode %.3f s)\n",
      r.ttft_seconds, r.restored_tokens, r.computed_tokens, r.load_seconds(), r.decode_seconds);
  std::printf("  from devices: %s\n", Sources(r).c_str());
  if (!r.fallback.empty()) std::printf("  recomputed because: %s\n", r.fallback.c_str());
  std::printf("  answer (%zu tokens; RANDOM weights, so gibberish): %s\n", out.size(),
              text.c_str());
  return Status::OK();
}

Status Ask(const AskOptions& o) {
  if (o.questions.empty()) return Status::InvalidArgument("--question: at least one is required");
  KVP_ASSIGN_OR_RETURN(std::string text, ReadText(o.doc));
  KVP_ASSIGN_OR_RETURN(std::string path, EnsureModel(o.model, o.preset, o.models_dir));
  KVP_ASSIGN_OR_RETURN(std::unique_ptr<LlamaEngine> engine, LlamaEngine::Load(path));
  const std::vector<int32_t> doc = engine->Tokenize(text, true);
  PoolOptions po = DefaultPool(o);
  if (!o.config.empty()) {
    KVP_ASSIGN_OR_RETURN(po, LoadPoolOptions(o.config));
  }
  ContextOptions co;
  co.n_ctx = static_cast<uint32_t>(RoundUp(doc.size() + 256 + o.generate, 256));
  co.threads = o.threads;
  KVP_ASSIGN_OR_RETURN(LlamaContextPtr ctx, engine->NewContext(co));
  KVP_ASSIGN_OR_RETURN(po.shape, llama::Connector::KvShape(ctx.get(), po.shape.chunk_tokens));
  std::string engine_name;
  KVP_ASSIGN_OR_RETURN(std::unique_ptr<Pool> pool, OpenPoolWithFallback(po, &engine_name));
  KVP_ASSIGN_OR_RETURN(std::unique_ptr<llama::Connector> conn,
                       llama::Connector::Create(ctx.get(), *pool, {.model_path = path}));
  std::printf("model %s (RANDOM weights), document %s: %zu tokens, pool:", path.c_str(),
              o.doc.c_str(), doc.size());
  for (const DeviceStats& d : pool->Stats().devices)
    std::printf(" %s (%s)", d.name.c_str(), d.kind.c_str());
  std::printf(", %llu chunks cached at open\n", (unsigned long long)pool->Stats().chunks);
  for (size_t i = 0; i < o.questions.size(); ++i) {
    KVP_RETURN_IF_ERROR(
        AskOne(*engine, ctx.get(), *conn, doc, o.questions[i], o.generate, int(i + 1)));
  }
  conn->Flush();
  llama::ConnectorStats s = conn->Stats();
  std::printf(
      "\nconnector: %llu prefills, %llu tokens restored, %llu computed, %llu chunks stored, "
      "%llu restore failures, %llu offload failures%s%s\n",
      (unsigned long long)s.prefills, (unsigned long long)s.restored_tokens,
      (unsigned long long)s.computed_tokens, (unsigned long long)s.offloaded_chunks,
      (unsigned long long)s.restore_failures, (unsigned long long)s.offload_failures,
      s.last_error.empty() ? "" : "; last error: ", s.last_error.c_str());
  return Status::OK();
}

}  // namespace

int RunAsk(const AskOptions& o) {
  Status s = Ask(o);
  if (s.ok()) return 0;
  std::fprintf(stderr, "kvpool llama ask: %s\n", s.ToString().c_str());
  return s.code() == StatusCode::kInvalidArgument ? 2 : 1;
}

}  // namespace kvpool::cli
