// Part B of `kvpool bench remote` (bench_remote.h): TTFT with llama.cpp when
// the document's KV comes from the remote tier, from the node's own SSD, or
// is recomputed. Three nodes share one llama.cpp context (one model in
// memory); each has its own pool and connector:
//   A  extent + redis: prefills document + question cold (the recompute
//      reference) and stores the document, locally and in the cluster;
//   B  a fresh pool for every query (new extent file, DRAM region, redis):
//      its table is empty, so the document is found in and read from the
//      cluster;
//   C  extent only: stored the document itself; page cache dropped before
//      every query.
// Every query asks a new question about the same document, B then C.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "bench_remote.h"
#include "bench_util.h"
#include "kvpool_llama.h"
#include "llama.h"
#include "llama/engine.h"
#include "llama/llama_pools.h"
#include "util/clock.h"

namespace kvpool::cli {
namespace {

using nlohmann::json;

constexpr uint32_t kChunkTokens = 256;
constexpr uint32_t kQuestionTokens = 32;

// One query answered by one node.
struct Query {
  double ttft = 0;
  double load = 0;      // retrieve + assemble + llama_state_seq_set_data
  double retrieve = 0;  // pool reads
  size_t restored_tokens = 0;
  uint64_t remote_bytes = 0;  // bytes of the restore served by the redis device
  uint64_t bytes = 0;         // bytes of the restore, all devices
  std::string fallback;
};

struct ContextRun {
  uint64_t context = 0;
  uint64_t kv_bytes = 0;
  double recompute_ttft = 0;
  double store_seconds = 0;
  std::vector<Query> remote, own_ssd;
  int logits_equal = 0;  // queries whose B and C logits are identical
  std::string page_cache;
};

struct Node {
  std::unique_ptr<Pool> pool;
  std::unique_ptr<llama::Connector> conn;  // declared last: destroyed before the pool
};

DeviceOptions Extent(const std::string& path, uint64_t bytes) {
  DeviceOptions d;
  d.name = "ssd0";
  d.kind = DeviceKind::kExtent;
  d.path = path;
  d.capacity_bytes = RoundUp(bytes, 4096);
  d.reformat = true;
  d.bandwidth_gibps = 2.0;  // configured: no probe
  return d;
}

DeviceOptions Dram(uint64_t bytes) {
  DeviceOptions d;
  d.name = "dram0";
  d.kind = DeviceKind::kDram;
  d.capacity_bytes = RoundUp(bytes, 2 << 20);
  d.bandwidth_gibps = 8.0;
  return d;
}

// A node's pool: a fresh extent file of `kv` + 25%, a DRAM region of `dram`
// bytes when not 0, the redis device when `redis` is given.
Result<Node> OpenNode(const ModelShape& shape, const std::string& extent, uint64_t kv,
                      uint64_t dram, const DeviceOptions* redis, llama_context* ctx,
                      uint64_t fingerprint) {
  std::error_code ec;
  std::filesystem::remove(extent, ec);
  PoolOptions o;
  o.shape = shape;
  if (dram > 0) o.devices.push_back(Dram(dram));
  o.devices.push_back(Extent(extent, kv + kv / 4 + (64ull << 20)));
  if (redis != nullptr) {
    o.devices.push_back(*redis);
    o.devices.back().capacity_bytes = RoundUp(kv + kv / 4 + (64ull << 20), 4096);
  }
  Node n;
  std::string engine;
  KVP_ASSIGN_OR_RETURN(n.pool, OpenPoolWithFallback(o, &engine));
  KVP_ASSIGN_OR_RETURN(n.conn, llama::Connector::Create(ctx, *n.pool,
                                                        {.model_fingerprint = fingerprint,
                                                         .offload = false,
                                                         .reserve_tokens = llama_n_ctx(ctx)}));
  return n;
}

Query QueryOf(const llama::PrefillResult& r) {
  Query q{r.ttft_seconds, r.load_seconds(), r.retrieve_seconds, r.restored_tokens, 0, 0, r.fallback};
  for (const llama::SourceDevice& s : r.sources) {
    q.bytes += s.bytes;
    if (s.kind == "redis") q.remote_bytes += s.bytes;
  }
  return q;
}

// Node A: the recompute reference, then the document stored locally and in
// the cluster; node C stores it too (the sequence holds `prompt`).
Status RecomputeAndStore(Node& a, Node& c, const std::vector<int32_t>& prompt, size_t chunks,
                         ContextRun* run) {
  KVP_ASSIGN_OR_RETURN(llama::PrefillResult cold, a.conn->Prefill(prompt));
  if (cold.restored_tokens != 0) return Status::Aborted("node A found the document already stored");
  run->recompute_ttft = cold.ttft_seconds;
  Clock::time_point t = Clock::now();
  KVP_RETURN_IF_ERROR(a.conn->Offload(prompt).status());
  KVP_RETURN_IF_ERROR(c.conn->Offload(prompt).status());
  a.conn->Flush();
  c.conn->Flush();
  run->store_seconds = SecondsSince(t);
  const uint64_t published = a.pool->Stats().remote_published_chunks;
  const uint64_t own = c.conn->Stats().offloaded_chunks;
  if (published != chunks || own != chunks) {
    return Status::IOError("of " + std::to_string(chunks) + " chunks, node A published " +
                           std::to_string(published) + " to the cluster and node C stored " +
                           std::to_string(own) + ": " + a.conn->Stats().last_error + " " +
                           c.conn->Stats().last_error);
  }
  return Status::OK();
}

Status CheckRestored(const Query& q, size_t doc_tokens, const char* node) {
  if (q.restored_tokens == doc_tokens) return Status::OK();
  return Status::IOError(std::string(node) + " restored " + std::to_string(q.restored_tokens) +
                         " of " + std::to_string(doc_tokens) + " tokens: " + q.fallback);
}

Result<ContextRun> RunContext(const RemoteBenchOptions& o, const LlamaEngine& engine,
                              uint64_t fingerprint, const DeviceOptions& redis, uint64_t context) {
  ContextOptions co;
  co.n_ctx = static_cast<uint32_t>(RoundUp(context + kQuestionTokens + 1, 256));
  co.threads = o.threads;
  KVP_ASSIGN_OR_RETURN(LlamaContextPtr ctx, engine.NewContext(co));
  KVP_ASSIGN_OR_RETURN(ModelShape shape, llama::Connector::KvShape(ctx.get(), kChunkTokens));
  ContextRun run;
  run.context = context;
  const size_t chunks = context / kChunkTokens;
  run.kv_bytes = uint64_t{shape.SegmentPayloadBytes()} * shape.layers * chunks;
  const std::string dir = o.dir + "/ttft-" + std::to_string(context);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::IOError("cannot create '" + dir + "': " + ec.message());

  KVP_ASSIGN_OR_RETURN(Node a, OpenNode(shape, dir + "/a.extent", run.kv_bytes, 0, &redis,
                                        ctx.get(), fingerprint));
  KVP_ASSIGN_OR_RETURN(Node c, OpenNode(shape, dir + "/c.extent", run.kv_bytes, 0, nullptr,
                                        ctx.get(), fingerprint));
  const std::vector<int32_t> doc = SyntheticTokens(engine, context, context, true);
  std::vector<int32_t> prompt = doc;
  const std::vector<int32_t> q0 = SyntheticTokens(engine, kQuestionTokens, 999, false);
  prompt.insert(prompt.end(), q0.begin(), q0.end());
  KVP_RETURN_IF_ERROR(RecomputeAndStore(a, c, prompt, chunks, &run));
  std::fprintf(stderr, "[%llu tokens] node A recomputed in %.2f s and stored the document\n",
               (unsigned long long)context, run.recompute_ttft);

  for (int r = 0; r < o.repeats; ++r) {
    prompt = doc;
    const std::vector<int32_t> q = SyntheticTokens(engine, kQuestionTokens, 1000 + r, false);
    prompt.insert(prompt.end(), q.begin(), q.end());
    std::vector<float> logits_b;
    {
      KVP_ASSIGN_OR_RETURN(Node b, OpenNode(shape, dir + "/b.extent", run.kv_bytes, run.kv_bytes,
                                            &redis, ctx.get(), fingerprint));
      KVP_ASSIGN_OR_RETURN(llama::PrefillResult rb, b.conn->Prefill(prompt));
      run.remote.push_back(QueryOf(rb));
      logits_b = LastLogits(ctx.get());
    }
    KVP_RETURN_IF_ERROR(CheckRestored(run.remote.back(), doc.size(), "node B"));
    run.page_cache = DropCaches(*c.pool);
    KVP_ASSIGN_OR_RETURN(llama::PrefillResult rc, c.conn->Prefill(prompt));
    run.own_ssd.push_back(QueryOf(rc));
    KVP_RETURN_IF_ERROR(CheckRestored(run.own_ssd.back(), doc.size(), "node C"));
    run.logits_equal += LastLogits(ctx.get()) == logits_b ? 1 : 0;
    std::fprintf(stderr, "[%llu tokens] query %d/%d: remote TTFT %.3f s (load %.3f s), own SSD "
                 "TTFT %.3f s (load %.3f s)\n", (unsigned long long)context, r + 1, o.repeats,
                 run.remote.back().ttft, run.remote.back().load, run.own_ssd.back().ttft,
                 run.own_ssd.back().load);
  }
  std::filesystem::remove_all(dir, ec);
  return run;
}

std::vector<double> Field(const std::vector<Query>& qs, double Query::*f) {
  std::vector<double> v;
  for (const Query& q : qs) v.push_back(q.*f);
  return v;
}

json QueriesJson(const std::vector<Query>& qs) {
  json a = json::array();
  for (const Query& q : qs) {
    a.push_back({{"ttft_s", q.ttft}, {"load_s", q.load}, {"retrieve_s", q.retrieve},
                 {"restored_tokens", q.restored_tokens}, {"bytes", q.bytes},
                 {"bytes_from_redis", q.remote_bytes}});
  }
  return a;
}

struct Medians {
  double remote_ttft, remote_load, ssd_ttft, ssd_load;
  explicit Medians(const ContextRun& r)
      : remote_ttft(Median(Field(r.remote, &Query::ttft))),
        remote_load(Median(Field(r.remote, &Query::load))),
        ssd_ttft(Median(Field(r.own_ssd, &Query::ttft))),
        ssd_load(Median(Field(r.own_ssd, &Query::load))) {}
};

json ContextJson(const ContextRun& r) {
  const Medians m(r);
  return {{"context", r.context}, {"kv_bytes", r.kv_bytes},
          {"recompute_ttft_s", r.recompute_ttft}, {"store_s", r.store_seconds},
          {"median_remote_ttft_s", m.remote_ttft}, {"median_remote_load_s", m.remote_load},
          {"median_own_ssd_ttft_s", m.ssd_ttft}, {"median_own_ssd_load_s", m.ssd_load},
          {"recompute_over_remote_ttft", Div(r.recompute_ttft, m.remote_ttft)},
          {"own_ssd_over_remote_load", Div(m.ssd_load, m.remote_load)},
          {"logits_equal", r.logits_equal}, {"queries", r.remote.size()},
          {"page_cache", r.page_cache},
          {"remote", QueriesJson(r.remote)}, {"own_ssd", QueriesJson(r.own_ssd)}};
}

void PrintTable(const std::vector<ContextRun>& runs) {
  Table t({"context", "KV MiB", "recompute TTFT s", "remote TTFT s (load s)",
           "own SSD TTFT s (load s)", "recompute/remote", "own SSD/remote load", "logits B = C",
           "B bytes from redis"});
  for (const ContextRun& r : runs) {
    const Medians m(r);
    uint64_t bytes = 0, remote = 0;
    for (const Query& q : r.remote) bytes += q.bytes, remote += q.remote_bytes;
    t.Add({std::to_string(r.context), Fixed(double(r.kv_bytes) / (1 << 20), 1),
           Fixed(r.recompute_ttft, 3),
           Fixed(m.remote_ttft, 3) + " (" + Fixed(m.remote_load, 3) + ")",
           Fixed(m.ssd_ttft, 3) + " (" + Fixed(m.ssd_load, 3) + ")",
           Fixed(Div(r.recompute_ttft, m.remote_ttft), 1) + "x",
           Fixed(Div(m.ssd_load, m.remote_load), 2) + "x",
           std::to_string(r.logits_equal) + "/" + std::to_string(r.remote.size()),
           Fixed(100 * Div(double(remote), double(bytes)), 1) + "%"});
  }
  std::cout << t.Render();
}

}  // namespace

Result<json> RunRemoteTtft(const RemoteBenchOptions& o, const DeviceOptions& redis,
                           const std::vector<uint64_t>& contexts) {
  KVP_ASSIGN_OR_RETURN(std::string path, EnsureModel(o.model, o.preset, o.models_dir));
  KVP_ASSIGN_OR_RETURN(std::unique_ptr<LlamaEngine> engine, LlamaEngine::Load(path));
  KVP_ASSIGN_OR_RETURN(uint64_t fingerprint, llama::FingerprintModelFile(path));
  std::vector<ContextRun> runs;
  json out{{"model", o.model.empty() ? o.preset : path},
           {"weights", "RANDOM (kvpool-mkmodel): real shape and compute, gibberish text"},
           {"engine", std::string("llama.cpp ") + KVPOOL_LLAMA_COMMIT + " CPU, flash attention, F16 KV"},
           {"threads", o.threads}, {"chunk_tokens", kChunkTokens},
           {"question_tokens", kQuestionTokens}, {"contexts", json::array()}};
  for (uint64_t context : contexts) {
    Result<ContextRun> r = RunContext(o, *engine, fingerprint, redis, context);
    if (!r.ok()) return r.status().WithContext(std::to_string(context) + " tokens");
    out["contexts"].push_back(ContextJson(*r));
    runs.push_back(std::move(r).value());
  }
  std::printf("   model %s (RANDOM weights), %d llama.cpp threads, %u-token question; medians of "
              "%d queries, page cache before own-SSD queries: %s\n",
              out["model"].get<std::string>().c_str(), o.threads, kQuestionTokens, o.repeats,
              runs.empty() ? "-" : runs.back().page_cache.c_str());
  std::printf("   recompute: node A, 1 cold prefill; remote: node B, fresh pool each query; own SSD: "
              "node C\n\n");
  PrintTable(runs);
  return out;
}

}  // namespace kvpool::cli
