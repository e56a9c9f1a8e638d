#include "ttft_bench.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

#include "bench_util.h"
#include "engine.h"
#include "kvpool_llama.h"
#include "llama.h"
#include "llama_pools.h"
#include "ttft_report.h"

namespace kvpool::cli {
namespace {

using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

struct System {
  SystemResult result;
  std::unique_ptr<Pool> pool;
  std::unique_ptr<llama::Connector> conn;
  std::vector<std::vector<float>> logits;  // per warm query
};

std::string DescribeDevices(const Pool& pool) {
  std::string s;
  for (const DeviceStats& d : pool.Stats().devices) {
    s += (s.empty() ? "" : " + ") + d.name + " (" + d.kind + ", " +
         std::to_string(d.capacity_bytes >> 20) + " MiB, " + Fixed(d.bandwidth_gibps, 2) +
         " GiB/s" + (d.bandwidth_probed ? " probed" : "") + ")";
  }
  return s;
}

Result<System> OpenSystem(const TtftBenchOptions& o, const std::string& name,
                          const std::string& dir, uint64_t kv_bytes, llama_context* ctx,
                          const ModelShape& shape, uint64_t fingerprint) {
  PoolPlan plan;
  plan.system = name;
  plan.dir = dir + "/" + name;
  plan.state_dir = o.dir + "/state";
  plan.dram_bytes = o.dram_mib > 0 ? o.dram_mib << 20 : RoundUp(kv_bytes / 4, 2 << 20);
  if (name == "kvpool-large-dram") plan.dram_bytes = RoundUp(kv_bytes + kv_bytes / 4, 2 << 20);
  plan.ssd_bytes = kv_bytes + kv_bytes / 4;
  KVP_ASSIGN_OR_RETURN(PoolOptions po, PlanOptions(plan, shape));
  System s;
  s.result.system = name;
  KVP_ASSIGN_OR_RETURN(s.pool, OpenPoolWithFallback(po, &s.result.engine));
  if (name == "file") s.result.engine = "buffered file per chunk";
  s.result.devices = DescribeDevices(*s.pool);
  KVP_ASSIGN_OR_RETURN(s.conn, llama::Connector::Create(ctx, *s.pool,
                                                        {.model_fingerprint = fingerprint,
                                                         .reserve_tokens = llama_n_ctx(ctx)}));
  return s;
}

WarmSample SampleOf(const llama::PrefillResult& r) {
  return {r.ttft_seconds,    r.load_seconds(),  r.retrieve_seconds, r.assemble_seconds,
          r.assembled_bytes, r.restore_seconds, r.decode_seconds,   r.restored_tokens,
          r.computed_tokens, r.sources,         r.fallback};
}

// Stores the document (the sequence holds `prompt`) into every system.
Status StoreEverywhere(std::vector<System>& systems, const std::vector<int32_t>& prompt,
                       size_t chunks) {
  for (System& s : systems) {
    Clock::time_point t0 = Clock::now();
    KVP_RETURN_IF_ERROR(s.conn->Offload(prompt).status());
    s.conn->Flush();
    s.result.store_seconds = Since(t0);
    llama::ConnectorStats st = s.conn->Stats();
    if (st.offloaded_chunks != chunks) {
      return Status::NoSpace(s.result.system + " stored " + std::to_string(st.offloaded_chunks) +
                             " of " + std::to_string(chunks) + " chunks: " + st.last_error);
    }
  }
  return Status::OK();
}

// Queries the document with new questions, restoring it from each system in
// turn (page cache dropped before each query).
Status WarmQueries(const TtftBenchOptions& o, const LlamaEngine& engine, llama_context* ctx,
                   const std::vector<int32_t>& doc, std::vector<System>& systems,
                   std::string* cache_method) {
  for (int r = 0; r < o.repeats; ++r) {
    std::vector<int32_t> prompt = doc;
    std::vector<int32_t> q = SyntheticTokens(engine, o.question_tokens, 1000 + r, false);
    prompt.insert(prompt.end(), q.begin(), q.end());
    for (System& s : systems) {
      *cache_method = DropCaches(*s.pool);
      KVP_ASSIGN_OR_RETURN(llama::PrefillResult res, s.conn->Prefill(prompt));
      s.result.samples.push_back(SampleOf(res));
      s.logits.push_back(LastLogits(ctx));
      if (res.restored_tokens != doc.size()) {
        std::fprintf(stderr, "  warning: %s restored %zu of %zu tokens: %s\n",
                     s.result.system.c_str(), res.restored_tokens, doc.size(),
                     res.fallback.c_str());
      }
    }
  }
  return Status::OK();
}

void CompareLogits(std::vector<System>& systems) {
  for (System& s : systems) s.result.logits_match = s.logits == systems.front().logits;
}

Result<ContextResult> RunContext(const TtftBenchOptions& o, const LlamaEngine& engine,
                                 uint64_t fingerprint, uint64_t context, nlohmann::json& config) {
  ContextOptions co;
  co.n_ctx = static_cast<uint32_t>(RoundUp(context + o.question_tokens + 1, 256));
  co.threads = o.threads;
  KVP_ASSIGN_OR_RETURN(LlamaContextPtr ctx, engine.NewContext(co));
  KVP_ASSIGN_OR_RETURN(ModelShape shape, llama::Connector::KvShape(ctx.get(), o.chunk_tokens));
  ContextResult c;
  c.context = context;
  c.prompt_tokens = context + o.question_tokens;
  c.kv_bytes = shape.SegmentPayloadBytes() * shape.layers * (context / o.chunk_tokens);
  const std::string dir = o.dir + "/" + std::to_string(context);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  std::vector<System> systems;
  for (const std::string& name : o.systems) {
    KVP_ASSIGN_OR_RETURN(System s,
                         OpenSystem(o, name, dir, c.kv_bytes, ctx.get(), shape, fingerprint));
    systems.push_back(std::move(s));
  }
  config["shape"] = {
      {"layers", shape.layers},
      {"segment_payload_bytes", shape.SegmentPayloadBytes()},
      {"kv_bytes_per_token", shape.SegmentPayloadBytes() * shape.layers / o.chunk_tokens}};

  const std::vector<int32_t> doc = SyntheticTokens(engine, context, context, true);
  std::vector<int32_t> prompt = doc;
  std::vector<int32_t> q = SyntheticTokens(engine, o.question_tokens, 999, false);
  prompt.insert(prompt.end(), q.begin(), q.end());
  for (int i = 0; i < o.cold_repeats; ++i) {
    llama_memory_seq_rm(llama_get_memory(ctx.get()), 0, -1, -1);
    Clock::time_point t0 = Clock::now();
    KVP_RETURN_IF_ERROR(llama::DecodeTokens(ctx.get(), prompt, 0, 0, true));
    c.cold_ttft.push_back(Since(t0));
    std::fprintf(stderr, "[%llu tokens] cold prefill %d/%d: %.2f s\n", (unsigned long long)context,
                 i + 1, o.cold_repeats, c.cold_ttft.back());
  }
  KVP_RETURN_IF_ERROR(StoreEverywhere(systems, prompt, context / o.chunk_tokens));
  std::string method;
  KVP_RETURN_IF_ERROR(WarmQueries(o, engine, ctx.get(), doc, systems, &method));
  config["page_cache"] = method;
  CompareLogits(systems);
  for (System& s : systems) {
    std::fprintf(stderr, "[%llu tokens] %s: warm TTFT %.3f s (load %.3f s)\n",
                 (unsigned long long)context, s.result.system.c_str(), s.result.samples.back().ttft,
                 s.result.samples.back().load);
    c.systems.push_back(std::move(s.result));
  }
  systems.clear();  // connectors flush, pools close
  std::filesystem::remove_all(dir, ec);
  return c;
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  in >> one >> five >> fifteen;
  return one + " " + five + " " + fifteen;
}

}  // namespace

int RunTtftBench(const TtftBenchOptions& o) {
  Result<std::string> path = EnsureModel(o.model, o.preset, o.models_dir);
  if (!path.ok())
    return std::fprintf(stderr, "kvpool llama bench-ttft: %s\n", path.status().ToString().c_str()),
           1;
  Result<std::unique_ptr<LlamaEngine>> engine = LlamaEngine::Load(*path);
  Result<uint64_t> fp = llama::FingerprintModelFile(*path);
  if (!engine.ok() || !fp.ok()) {
    Status s = engine.ok() ? fp.status() : engine.status();
    return std::fprintf(stderr, "kvpool llama bench-ttft: %s\n", s.ToString().c_str()), 1;
  }
  TtftReport report;
  report.config = {
      {"model", o.model.empty() ? o.preset : *path},
      {"model_path", *path},
      {"weights",
       "RANDOM (kvpool-mkmodel): generated text is gibberish; compute cost and KV size "
       "are those of the real shape"},
      {"engine", std::string("llama.cpp ") + KVPOOL_LLAMA_COMMIT + " CPU, flash attention, F16 KV"},
      {"threads", o.threads},
      {"n_batch", 2048},
      {"n_ubatch", 512},
      {"chunk_tokens", o.chunk_tokens},
      {"question_tokens", o.question_tokens},
      {"repeats", o.repeats},
      {"cold_repeats", o.cold_repeats},
      {"dram_mib", o.dram_mib},
      {"machine", MachineDescription()},
      {"date", NowIso8601()},
      {"loadavg_start", LoadAverage()}};
  for (uint64_t context : o.contexts) {
    if (context % o.chunk_tokens != 0) {
      return std::fprintf(stderr,
                          "kvpool llama bench-ttft: --contexts: %llu is not a multiple of %u\n",
                          (unsigned long long)context, o.chunk_tokens),
             2;
    }
    Result<ContextResult> c = RunContext(o, **engine, *fp, context, report.config);
    if (!c.ok()) {
      std::fprintf(stderr, "kvpool llama bench-ttft: %llu tokens: %s\n",
                   (unsigned long long)context, c.status().ToString().c_str());
      return 1;
    }
    report.contexts.push_back(std::move(*c));
  }
  report.config["loadavg_end"] = LoadAverage();
  std::printf(
      "TTFT with llama.cpp, model %s (RANDOM weights: real shape and compute, gibberish text)\n",
      report.config["model"].get<std::string>().c_str());
  std::printf("page cache before each warm query: %s\n\n%s\n",
              report.config.value("page_cache", std::string("-")).c_str(), report.Table().c_str());
  std::printf("warm TTFT split (medians of each part, seconds):\n%s\n", report.SplitTable().c_str());
  for (const std::string& f : report.Write(o.out)) std::printf("wrote %s\n", f.c_str());
  return 0;
}

}  // namespace kvpool::cli
