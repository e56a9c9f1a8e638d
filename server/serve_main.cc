#include "serve_main.h"

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <pthread.h>
#include <thread>

#include <kvpool/client.h>
#include <kvpool/kvpool.h>

#include "http_server.h"
#include "kvpool_llama.h"
#include "llama.h"
#include "model.h"
#include "scheduler.h"

namespace kvpool::serve {
namespace {

int Fail(const Status& s) {
  std::fprintf(stderr, "kvpool serve: %s\n", s.ToString().c_str());
  return 1;
}

// The pool's shape for this model's KV: learnt from a small context made
// like the scheduler's (flash attention, F16 KV).
Result<ModelShape> ShapeOf(const ServeModel& model, uint32_t chunk_tokens) {
  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = 512;
  cp.n_batch = cp.n_ubatch = 512;
  cp.n_seq_max = 1;
  cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_ENABLED;
  cp.no_perf = true;
  llama_context* ctx = llama_init_from_model(model.get(), cp);
  if (ctx == nullptr) return Status::Aborted("llama.cpp cannot create a context");
  Result<ModelShape> shape = llama::Connector::KvShape(ctx, chunk_tokens);
  llama_free(ctx);
  return shape;
}

// --cache-ram scales the DRAM regions of --config to that total.
void ScaleDram(PoolOptions& po, uint64_t ram_bytes) {
  uint64_t total = 0;
  for (const DeviceOptions& d : po.devices) total += d.kind == DeviceKind::kDram ? d.capacity_bytes : 0;
  if (total == 0) return;
  for (DeviceOptions& d : po.devices) {
    if (d.kind != DeviceKind::kDram) continue;
    const double share = static_cast<double>(d.capacity_bytes) / static_cast<double>(total);
    d.capacity_bytes = std::max<uint64_t>(2 << 20, static_cast<uint64_t>(share * ram_bytes) >> 21 << 21);
  }
}

// DRAM (two regions of half the budget each, so reads of copies run in
// parallel) + one extent file named after the KV geometry, so that models of
// another shape get their own file in the same directory.
Result<PoolOptions> DefaultPool(const ServeOptions& o, const ModelShape& shape) {
  std::error_code ec;
  std::filesystem::create_directories(o.cache_dir, ec);
  if (ec) return Status::IOError("--cache-dir '" + o.cache_dir + "': " + ec.message());
  PoolOptions po;
  const uint64_t half = static_cast<uint64_t>(o.cache_ram_mib) << 19 >> 21 << 21;  // MiB/2, 2 MiB units
  for (int i = 0; i < 2 && half > 0; ++i) {
    DeviceOptions d;
    d.name = "dram" + std::to_string(i);
    d.kind = DeviceKind::kDram;
    d.capacity_bytes = half;
    po.devices.push_back(d);
  }
  DeviceOptions ssd;
  ssd.name = "ssd0";
  ssd.kind = DeviceKind::kExtent;
  ssd.path = o.cache_dir + "/kv-" + std::to_string(shape.layers) + "x" +
             std::to_string(shape.SegmentPayloadBytes()) + ".extent";
  ssd.capacity_bytes = o.cache_disk_mib << 20;
  po.devices.push_back(ssd);
  po.state_dir = o.cache_dir + "/state";
  po.probe_mib = 32;
  return po;
}

Result<PoolOptions> PoolOptionsFor(const ServeOptions& o, const ModelShape& shape) {
  if (o.cache_ram_mib < 0) {
    return Status::InvalidArgument("--cache-ram " + std::to_string(o.cache_ram_mib) +
                                   ": give the DRAM budget in MiB (0 = no DRAM copies)");
  }
  PoolOptions po;
  if (!o.config.empty()) {
    KVP_ASSIGN_OR_RETURN(po, LoadPoolOptions(o.config));
    ScaleDram(po, static_cast<uint64_t>(o.cache_ram_mib) << 20);
  } else {
    if (o.cache_disk_mib == 0) return Status::InvalidArgument("--cache-disk 0: must be > 0 MiB");
    KVP_ASSIGN_OR_RETURN(po, DefaultPool(o, shape));
  }
  po.shape = shape;
  return po;
}

Result<std::unique_ptr<Pool>> OpenPool(PoolOptions po) {
  Result<std::unique_ptr<Pool>> pool = Pool::Open(po);
  if (pool.ok() || pool.status().code() != StatusCode::kUnsupported) return pool;
  for (DeviceOptions& d : po.devices) {  // io_uring unavailable: O_DIRECT pread/pwrite workers
    if (d.kind == DeviceKind::kExtent) d.engine = "psync";
  }
  std::fprintf(stderr, "kvpool serve: io_uring unavailable (%s); extent devices use psync\n",
               pool.status().ToString().c_str());
  return Pool::Open(po);
}

// The pool of a kvpoold, when its model shape is this model's.
Result<std::unique_ptr<Pool>> ConnectDaemonPool(const ServeOptions& o, const ModelShape& shape) {
  ClientOptions co;
  co.address = o.pool_address;
  co.tenant = o.pool_tenant;
  KVP_ASSIGN_OR_RETURN(auto pool, ClientPool::Connect(co));
  const ModelShape& have = pool->options().shape;
  if (have.Fingerprint() != shape.Fingerprint()) {
    return Status::InvalidArgument(
        "--pool " + o.pool_address + ": the daemon's pool holds another KV shape (layers " +
        std::to_string(have.layers) + ", segment " + std::to_string(have.SegmentPayloadBytes()) +
        " bytes); this model needs [model] layers = " + std::to_string(shape.layers) + ", kv_heads = " +
        std::to_string(shape.kv_heads) + ", head_dim = " + std::to_string(shape.head_dim) + ", dtype_bytes = " +
        std::to_string(shape.dtype_bytes) + ", chunk_tokens = " + std::to_string(shape.chunk_tokens));
  }
  return std::unique_ptr<Pool>(std::move(pool));
}

Status ReadKeyFile(const std::string& path, std::vector<std::string>* keys) {
  std::ifstream in(path);
  if (!in) return Status::IOError("--api-key-file '" + path + "': cannot read it");
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty() && line[0] != '#') keys->push_back(line);
  }
  return Status::OK();
}

void PrintPool(const Pool& pool) {
  for (const DeviceStats& d : pool.Stats().devices) {
    std::fprintf(stderr, "kvpool serve: cache device %s (%s, %s, %llu MiB, %.2f GiB/s)\n",
                 d.name.c_str(), d.kind.c_str(), d.role.c_str(),
                 static_cast<unsigned long long>(d.capacity_bytes >> 20), d.bandwidth_gibps);
  }
  const PoolStats s = pool.Stats();
  std::fprintf(stderr, "kvpool serve: %llu chunks in the cache\n",
               static_cast<unsigned long long>(s.chunks));
}

// Blocks SIGINT and SIGTERM in every thread made after it; one thread waits
// for them and stops the HTTP server.
sigset_t BlockStopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

int Serve(const ServeOptions& o, const sigset_t& stop_signals) {
  Result<std::unique_ptr<ServeModel>> model = ServeModel::Load(o.model, o.alias);
  if (!model.ok()) return Fail(model.status());
  if (o.print_kv_shape) {
    Result<ModelShape> shape = ShapeOf(**model, o.chunk_tokens);
    if (!shape.ok()) return Fail(shape.status());
    std::printf("[model]\nlayers = %u\nkv_heads = %u\nhead_dim = %u\ndtype_bytes = %u\nchunk_tokens = %u\n",
                shape->layers, shape->kv_heads, shape->head_dim, shape->dtype_bytes, shape->chunk_tokens);
    return 0;
  }
  std::unique_ptr<Pool> pool;
  SchedulerOptions so;
  if (!o.no_cache) {
    Result<ModelShape> shape = ShapeOf(**model, o.chunk_tokens);
    if (!shape.ok()) return Fail(shape.status());
    Result<std::unique_ptr<Pool>> opened = Status::Aborted("no pool");
    if (!o.pool_address.empty()) {
      opened = ConnectDaemonPool(o, *shape);
    } else {
      Result<PoolOptions> po = PoolOptionsFor(o, *shape);
      if (!po.ok()) return Fail(po.status());
      opened = OpenPool(*po);
    }
    if (!opened.ok()) return Fail(opened.status());
    pool = std::move(*opened);
    Result<uint64_t> fp = llama::FingerprintModelFile(o.model);
    if (!fp.ok()) return Fail(fp.status());
    so.model_fingerprint = *fp;
    so.pool = pool.get();
    PrintPool(*pool);
  }
  so.slots = o.slots;
  so.n_ctx = o.n_ctx;
  so.n_batch = o.n_batch;
  so.n_ubatch = o.n_ubatch;
  so.threads = o.threads > 0 ? o.threads : static_cast<int32_t>(std::thread::hardware_concurrency());
  so.max_queued = o.max_queue;
  so.default_max_tokens = o.n_predict;
  so.partial_chunks = !o.no_partial_chunks;
  so.max_pending_offload_bytes = o.max_offload_mib << 20;
  Result<std::unique_ptr<Scheduler>> scheduler = Scheduler::Create(**model, so);
  if (!scheduler.ok()) return Fail(scheduler.status());

  HttpOptions ho;
  ho.host = o.host;
  ho.port = o.port;
  ho.api_keys = o.api_keys;
  if (!o.api_key_file.empty()) {
    Status s = ReadKeyFile(o.api_key_file, &ho.api_keys);
    if (!s.ok()) return Fail(s);
  }
  // Each request holds an HTTP thread until answered: enough for every slot
  // and the whole queue, so that overload is a 429, not a stalled accept.
  ho.http_threads = o.http_threads > 0 ? o.http_threads
                                       : o.slots + static_cast<int>(o.max_queue) + 2;
  ho.read_timeout_s = o.timeout_s;
  HttpServer http(**model, **scheduler, pool.get(), ho);
  if (Status s = http.Bind(); !s.ok()) return Fail(s);
  std::fprintf(stderr, "kvpool serve: model %s (%s), %d slots of %u tokens, chat template %s\n",
               (*model)->id().c_str(), o.model.c_str(), o.slots, (*scheduler)->slot_context(),
               (*model)->chat_template_name().c_str());
  std::printf("kvpool serve: listening on http://%s:%d\n", o.host.c_str(), http.port());
  std::fflush(stdout);

  std::thread stopper([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    std::fprintf(stderr, "kvpool serve: %s, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    http.Stop();
  });
  Status served = http.Serve();
  if (!served.ok()) {
    pthread_kill(stopper.native_handle(), SIGTERM);  // wake it
  }
  stopper.join();
  (*scheduler)->Shutdown();
  scheduler->reset();
  if (pool) {
    const PoolStats s = pool->Stats();
    std::fprintf(stderr, "kvpool serve: stopped; %llu chunks in the cache\n",
                 static_cast<unsigned long long>(s.chunks));
  }
  return served.ok() ? 0 : Fail(served);
}

}  // namespace

CLI::App* AddServeCommand(CLI::App& app, ServeOptions& o) {
  CLI::App* c = app.add_subcommand(
      "serve", "OpenAI-compatible llama.cpp server with the pool as its prompt cache (docs/serve.md)");
  c->add_option("-m,--model", o.model, "GGUF model file")->required();
  c->add_option("-a,--alias", o.alias, "model id clients name (default: the file name)");
  c->add_option("-c,--ctx-size", o.n_ctx, "context tokens, split over the slots")->capture_default_str();
  c->add_option("--parallel", o.slots, "slots (-np)")->check(CLI::Range(1, 256))->capture_default_str();
  c->add_option("-t,--threads", o.threads, "compute threads (0 = every core)")->capture_default_str();
  c->add_option("-b,--batch-size", o.n_batch, "tokens per decode over all slots")->capture_default_str();
  c->add_option("--ubatch-size", o.n_ubatch, "tokens per compute step (-ub)")->capture_default_str();
  c->add_option("-n,--n-predict", o.n_predict, "max tokens when a request gives none (-1: to the context's end)")->capture_default_str();
  c->add_option("--host", o.host, "address to listen on")->capture_default_str();
  c->add_option("--port", o.port, "port (0 = any free port)")->check(CLI::Range(0, 65535))->capture_default_str();
  c->add_option("--api-key", o.api_keys, "accepted API key; each key is a tenant with its own cache (repeatable)");
  c->add_option("--api-key-file", o.api_key_file, "file of API keys, one per line");
  c->add_option("--threads-http", o.http_threads, "HTTP worker threads (0 = slots + max-queue + 2)")->capture_default_str();
  c->add_option("--timeout", o.timeout_s, "connection read/write timeout, seconds")->capture_default_str();
  c->add_option("--max-queue", o.max_queue, "requests waiting for a slot before 429")->capture_default_str();
  c->add_option("--cache-ram", o.cache_ram_mib, "DRAM budget of the prompt cache, MiB (0 = none)")->capture_default_str();
  c->add_option("--cache-dir", o.cache_dir, "where the persistent cache lives (extent file, probe state)")->capture_default_str();
  c->add_option("--cache-disk", o.cache_disk_mib, "capacity of the cache's extent file, MiB")->capture_default_str();
  c->add_option("--config", o.config, "pool devices (TOML, docs/configuration.md) instead of --cache-dir/--cache-disk");
  c->add_option("--chunk-tokens", o.chunk_tokens, "tokens per cached chunk")->check(CLI::Range(16, 4096))->capture_default_str();
  c->add_option("--max-offload-mib", o.max_offload_mib, "KV snapshots waiting to be stored, MiB")->capture_default_str();
  c->add_option("--pool", o.pool_address, "use the shared pool of a kvpoold (unix:PATH) instead of an own one");
  c->add_option("--pool-tenant", o.pool_tenant, "the kvpoold tenant to use")->capture_default_str();
  c->add_flag("--no-cache", o.no_cache, "no prompt cache beyond the slots' own KV");
  c->add_flag("--no-partial-chunks", o.no_partial_chunks, "cache whole chunks only: a hit recomputes up to chunk-tokens - 1 tokens");
  c->add_flag("--print-kv-shape", o.print_kv_shape, "print the [model] table of a kvpoold pool for this model, then exit");
  return c;
}

std::vector<std::string> LlamaServerFlagAliases(std::vector<std::string> args) {
  for (std::string& a : args) {
    if (a == "-np") a = "--parallel";
    else if (a == "-ub") a = "--ubatch-size";
  }
  return args;
}

int RunServe(const ServeOptions& o) {
  const sigset_t stop_signals = BlockStopSignals();
  return Serve(o, stop_signals);
}

}  // namespace kvpool::serve
