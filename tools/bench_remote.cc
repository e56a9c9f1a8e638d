#include "bench_remote.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include <kvpool/kvpool.h>

#include "bench_remote_redis.h"
#include "bench_util.h"
#include "host_kv.h"
#include "longdoc/longdoc_bench.h"
#include "util/clock.h"

namespace kvpool::cli {
namespace {

using nlohmann::json;

constexpr uint32_t kLayers = 8;               // part A's model: 8 layers
constexpr uint32_t kTtlSeconds = 600;         // every key of the run expires after this
constexpr uint32_t kTimeoutMs = 5000;         // one batch of 1 MiB values on a busy 2-core VM
constexpr size_t kMaxLookupChunks = 4096;     // what one remote Lookup asks for at most
constexpr uint64_t kReaderExtentBytes = 64ull << 20;

uint64_t Align4K(uint64_t v) { return (v + 4095) / 4096 * 4096; }

// Part A's model: `layers` x 256-token chunks whose segment payload is
// exactly `segment_kib` KiB (2 x 256 x kv_heads x head_dim x 2 bytes).
ModelShape ThroughputShape(uint32_t segment_kib) {
  ModelShape s;
  s.name = "remote-bench-" + std::to_string(segment_kib) + "KiB";
  s.layers = kLayers;
  s.chunk_tokens = 256;
  s.dtype_bytes = 2;
  s.kv_heads = segment_kib % 8 == 0 ? 8 : 4;
  s.head_dim = segment_kib / s.kv_heads;
  return s;
}

uint64_t DocumentChunks(const RemoteBenchOptions& o) {
  return (o.mib << 10) / (uint64_t{o.segment_kib} * kLayers);
}

// The run's redis device: seeds, a key prefix no other run uses, expiry.
// capacity_bytes is set by each pool.
DeviceOptions RedisTemplate(const RemoteBenchOptions& o, const std::vector<Endpoint>& seeds) {
  DeviceOptions d;
  d.name = "remote";
  d.kind = DeviceKind::kRedis;
  for (const Endpoint& e : seeds) d.nodes.push_back(e.ToString());
  d.key_prefix = "bench-" + std::to_string(::getpid()) + "-" + std::to_string(std::time(nullptr)) + ":";
  d.ttl_s = kTtlSeconds;
  d.timeout_ms = kTimeoutMs;
  d.io_threads = o.io_threads;
  d.queue_depth = o.queue_depth;
  d.bandwidth_gibps = 1.0;  // configured: no probe data is written to the cluster
  return d;
}

DeviceOptions ExtentDevice(const std::string& path, uint64_t bytes) {
  DeviceOptions d;
  d.name = "ssd0";
  d.kind = DeviceKind::kExtent;
  d.path = path;
  d.capacity_bytes = Align4K(bytes);
  d.engine = "uring";
  d.reformat = true;
  d.bandwidth_gibps = 2.0;  // configured: a reader's chunks have one copy, weights do not matter
  return d;
}

// Pool::Open; an extent device without io_uring is retried with psync.
Result<std::unique_ptr<Pool>> OpenWithFallback(PoolOptions options) {
  Result<std::unique_ptr<Pool>> pool = Pool::Open(options);
  if (pool.ok() || pool.status().code() != StatusCode::kUnsupported) return pool;
  for (DeviceOptions& d : options.devices) {
    if (d.kind == DeviceKind::kExtent) d.engine = "psync";
  }
  return Pool::Open(options);
}

// A pool of one fresh extent file (removed first) and the redis device.
PoolOptions PoolWith(const ModelShape& shape, const std::string& extent, uint64_t extent_bytes,
                     DeviceOptions redis, uint64_t remote_bytes) {
  std::error_code ec;
  std::filesystem::remove(extent, ec);
  PoolOptions o;
  o.shape = shape;
  o.tenant_salt = "bench-remote";
  o.devices.push_back(ExtentDevice(extent, extent_bytes));
  redis.capacity_bytes = Align4K(remote_bytes);
  o.devices.push_back(std::move(redis));
  return o;
}

struct Document {
  ModelShape shape;
  std::vector<ChunkKey> keys;
  uint64_t bytes = 0;
  HostKv data;
};

Document MakeDocument(const RemoteBenchOptions& o) {
  ModelShape shape = ThroughputShape(o.segment_kib);
  const size_t chunks = DocumentChunks(o);
  std::vector<int32_t> tokens(chunks * shape.chunk_tokens);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int32_t(i * 2654435761u % 32000);
  Namespace ns = Namespace::Make(shape.Fingerprint(), "bench-remote");
  std::vector<ChunkKey> keys = ChainChunkKeys(ns, tokens, shape.chunk_tokens);
  uint64_t bytes = uint64_t{chunks} * shape.layers * shape.SegmentPayloadBytes();
  return Document{shape, std::move(keys), bytes, HostKv(shape, chunks, 1)};
}

// Node W: stores the document locally and in the cluster. Returns seconds.
Result<double> StoreDocument(const PoolOptions& options, const Document& doc) {
  KVP_ASSIGN_OR_RETURN(std::unique_ptr<Pool> pool, OpenWithFallback(options));
  Clock::time_point t = Clock::now();
  KVP_ASSIGN_OR_RETURN(OffloadHandle h, pool->Offload(doc.keys, doc.data.ConstView()));
  Result<size_t> stored = h.Wait();
  pool->Flush();
  const double seconds = SecondsSince(t);
  if (!stored.ok()) return stored.status().WithContext("pool W offload");
  PoolStats s = pool->Stats();
  if (*stored != doc.keys.size() || s.remote_published_chunks != doc.keys.size()) {
    return Status::IOError("pool W stored " + std::to_string(*stored) + " and published " +
                           std::to_string(s.remote_published_chunks) + " of " +
                           std::to_string(doc.keys.size()) + " chunks (remote write failures: " +
                           std::to_string(s.remote_write_failures) + ")");
  }
  return seconds;
}

struct ReadRun {
  double seconds = 0;         // Lookup call to Wait returning
  double lookup_seconds = 0;  // of which the Lookup (remote chunk records)
  CpuTimes cpu;               // this process, over the same interval
  uint64_t remote_bytes = 0;  // PoolStats::bytes_read_from_remote
  bool verified = false;
  double Gibps(uint64_t bytes) const { return Div(double(bytes) / double(1ull << 30), seconds); }
};

// Node R: a fresh pool (empty table) finds the document in the cluster and
// reads all of it into `dst`, which is then compared with what W stored.
Result<ReadRun> RetrieveFresh(const PoolOptions& options, const Document& doc, HostKv& dst) {
  dst.Zero(doc.keys.size());
  KVP_ASSIGN_OR_RETURN(std::unique_ptr<Pool> pool, OpenWithFallback(options));
  ReadRun run;
  CpuTimes cpu0 = CpuTimes::Now();
  Clock::time_point t = Clock::now();
  const size_t found = pool->Lookup(doc.keys);
  run.lookup_seconds = SecondsSince(t);
  KVP_ASSIGN_OR_RETURN(RetrieveHandle h, pool->Retrieve(doc.keys, dst.View(), {}));
  Result<size_t> n = h.Wait();
  run.seconds = SecondsSince(t);
  run.cpu = CpuTimes::Now() - cpu0;
  if (!n.ok()) return n.status().WithContext("pool R retrieve");
  if (found != doc.keys.size() || *n != doc.keys.size()) {
    return Status::IOError("pool R found " + std::to_string(found) + " and read " +
                           std::to_string(*n) + " of " + std::to_string(doc.keys.size()) +
                           " chunks: " + h.error().ToString());
  }
  run.remote_bytes = pool->Stats().bytes_read_from_remote;
  if (run.remote_bytes != doc.bytes) {
    return Status::IOError("pool R read " + std::to_string(run.remote_bytes) + " of " +
                           std::to_string(doc.bytes) + " bytes from the remote tier");
  }
  run.verified = dst.Equals(doc.data, doc.keys.size());
  if (!run.verified) return Status::Corruption("pool R read bytes that differ from what W stored");
  return run;
}

struct Repeat {
  ReadRun kvpool;
  RedisBenchmarkResult reference;
};

void PrintThroughput(const std::vector<Repeat>& reps, uint64_t bytes, json& out) {
  Table t({"repeat", "kvpool GiB/s", "redis-benchmark GET GiB/s", "ratio", "kvpool sys s/GiB",
           "kvpool user s/GiB", "GET hits"});
  std::vector<double> k, r, ratio, sys, user;
  const double gib = double(bytes) / double(1ull << 30);
  json rows = json::array();
  for (size_t i = 0; i < reps.size(); ++i) {
    const Repeat& p = reps[i];
    k.push_back(p.kvpool.Gibps(bytes));
    r.push_back(p.reference.get_gibps);
    ratio.push_back(Div(k.back(), r.back()));
    sys.push_back(p.kvpool.cpu.system / gib);
    user.push_back(p.kvpool.cpu.user / gib);
    t.Add({std::to_string(i + 1), Fixed(k.back(), 2), Fixed(r.back(), 2), Fixed(ratio.back(), 2),
           Fixed(sys.back(), 3), Fixed(user.back(), 3),
           Fixed(100 * p.reference.HitFraction(), 1) + "%"});
    rows.push_back({{"kvpool_seconds", p.kvpool.seconds},
                    {"kvpool_lookup_seconds", p.kvpool.lookup_seconds},
                    {"kvpool_gibps", k.back()},
                    {"kvpool_system_cpu_s", p.kvpool.cpu.system},
                    {"kvpool_user_cpu_s", p.kvpool.cpu.user},
                    {"kvpool_bytes_read_from_remote", p.kvpool.remote_bytes},
                    {"verified", p.kvpool.verified},
                    {"redis_benchmark", ToJson(p.reference)},
                    {"ratio", ratio.back()}});
  }
  t.Add({"median", Fixed(Median(k), 2), Fixed(Median(r), 2), Fixed(Median(ratio), 2),
         Fixed(Median(sys), 3), Fixed(Median(user), 3), ""});
  std::cout << t.Render();
  out["repeats"] = rows;
  out["median_kvpool_gibps"] = Median(k);
  out["median_redis_benchmark_get_gibps"] = Median(r);
  out["median_ratio"] = Median(ratio);
  out["median_kvpool_system_cpu_s_per_gib"] = Median(sys);
  out["median_kvpool_user_cpu_s_per_gib"] = Median(user);
}

// Part A. Prints its table; the results go to out["throughput"].
Status RunThroughput(const RemoteBenchOptions& o, const DeviceOptions& redis,
                     const std::vector<Endpoint>& masters, json& out) {
  Document doc = MakeDocument(o);
  const uint64_t remote_bytes = doc.bytes + doc.bytes / 4 + (64ull << 20);
  const size_t segments = doc.keys.size() * doc.shape.layers;
  std::printf("A. throughput: %s, %zu chunks x %u layers = %zu segments of %u KiB, %.2f GiB; "
              "redis device: %u io threads x %u commands per batch\n",
              doc.shape.name.c_str(), doc.keys.size(), doc.shape.layers, segments, o.segment_kib,
              double(doc.bytes) / double(1ull << 30), o.io_threads, o.queue_depth);
  PoolOptions w = PoolWith(doc.shape, o.dir + "/w.extent", doc.bytes + doc.bytes / 8 + (16ull << 20),
                           redis, remote_bytes);
  KVP_ASSIGN_OR_RETURN(double store_s, StoreDocument(w, doc));
  std::printf("   pool W (extent + redis) stored it in %.2f s (local and remote copies)\n", store_s);
  std::error_code ec;
  std::filesystem::remove(o.dir + "/w.extent", ec);

  RedisBenchmarkJob job = ReferenceJob(masters.front(), doc.shape.SegmentPayloadBytes(), segments,
                                       masters.size(), o.io_threads, o.queue_depth);
  std::printf("   reference: %s\n\n", RedisBenchmarkCommand(job).c_str());
  HostKv dst(doc.shape, doc.keys.size(), 0);
  std::vector<Repeat> reps;
  Status status;
  for (int i = 0; i < o.repeats && status.ok(); ++i) {
    PoolOptions r = PoolWith(doc.shape, o.dir + "/r.extent", kReaderExtentBytes, redis, remote_bytes);
    Result<ReadRun> run = RetrieveFresh(r, doc, dst);
    if (!run.ok()) status = run.status();
    Result<RedisBenchmarkResult> ref = run.ok() ? RunRedisBenchmark(job, masters) : run.status();
    if (run.ok() && !ref.ok()) status = ref.status();
    if (status.ok()) reps.push_back({*run, *ref});
  }
  std::filesystem::remove(o.dir + "/r.extent", ec);
  RemoveRedisBenchmarkKeys(masters);
  KVP_RETURN_IF_ERROR(status);
  json& a = out["throughput"];
  a = {{"shape", {{"name", doc.shape.name}, {"layers", doc.shape.layers},
                  {"segment_payload_bytes", doc.shape.SegmentPayloadBytes()}}},
       {"chunks", doc.keys.size()}, {"segments", segments}, {"bytes", doc.bytes},
       {"store_seconds", store_s}, {"io_threads", o.io_threads}, {"queue_depth", o.queue_depth},
       {"reference_command", RedisBenchmarkCommand(job)},
       {"kvpool_timing", "Lookup call to RetrieveHandle::Wait returning, fresh pool R each repeat; "
                         "payload bytes"},
       {"reference_timing", "redis-benchmark GET rps x hit fraction x value bytes (payload + 48)"}};
  PrintThroughput(reps, doc.bytes, a);
  std::printf("(kvpool: fresh pool R each repeat, every chunk remote-only, all bytes verified; "
              "CPU: getrusage of this process over the retrieval)\n");
  return Status::OK();
}

// Part C: can a namespace with a bandwidth-limited loopback be made here?
json TryNetem() {
  const std::string ns = "kvpool-netem-" + std::to_string(::getpid());
  ShellResult add = RunShell("ip netns add " + ns);
  ShellResult tc{1, add.output};
  if (add.rc == 0) {
    RunShell("ip netns exec " + ns + " ip link set lo up");
    tc = RunShell("ip netns exec " + ns + " tc qdisc add dev lo root netem rate 10gbit");
    RunShell("ip netns del " + ns);
  }
  json j{{"command", "ip netns add " + ns + "; ip netns exec " + ns +
                         " tc qdisc add dev lo root netem rate 10gbit"}};
  if (tc.rc == 0) {
    j["available"] = true;
    std::printf("C. netem bandwidth limit: available (namespace with lo at 10gbit made and "
                "removed; this bench keeps the cluster where it is)\n");
  } else {
    j["available"] = false;
    j["error"] = (add.rc != 0 ? "ip netns add: " : "tc: ") + tc.output;
    std::printf("C. netem bandwidth limit: not available here (%s)\n",
                j["error"].get<std::string>().c_str());
  }
  return j;
}

Status WriteJson(const std::string& dir, const json& j, std::string* path) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::IOError("--out '" + dir + "': " + ec.message());
  *path = dir + "/bench_remote.json";
  std::ofstream f(*path);
  f << j.dump(2) << "\n";
  if (!f) return Status::IOError("cannot write " + *path);
  return Status::OK();
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  in >> one >> five >> fifteen;
  return one + " " + five + " " + fifteen;
}

// Token counts; "none" alone: no context (part B is skipped).
Result<std::vector<uint64_t>> ParseContexts(const std::vector<std::string>& texts) {
  std::vector<uint64_t> out;
  if (texts.size() == 1 && texts[0] == "none") return out;
  for (const std::string& c : texts) {
    uint64_t n = 0;
    if (!ParseTokenCount(c, &n) || n == 0 || n % 256 != 0) {
      return Status::InvalidArgument("--llama-contexts: '" + c +
                                     "' is not a token count that is a multiple of 256 (e.g. 4K)");
    }
    out.push_back(n);
  }
  return out;
}

}  // namespace

void AddRemoteBenchOptions(CLI::App& c, RemoteBenchOptions& o) {
  c.add_option("--nodes", o.nodes, "cluster seed nodes, host:port[,host:port...]")->required();
  c.add_option("--mib", o.mib, "document size of the throughput part (MiB)")->capture_default_str();
  c.add_option("--segment-kib", o.segment_kib, "segment payload (KiB, a multiple of 4)")->capture_default_str();
  c.add_option("--repeats", o.repeats, "retrievals and queries (medians reported)")->capture_default_str();
  c.add_option("--io-threads", o.io_threads, "redis device worker threads")->capture_default_str();
  c.add_option("--queue-depth", o.queue_depth, "redis device commands per batch and thread")->capture_default_str();
  c.add_option("--llama-contexts", o.llama_contexts, "TTFT document lengths, e.g. 4K 16K; none: skip the TTFT part")->capture_default_str();
  c.add_option("--preset", o.preset, "generated model when --model is not given: tiny, smol, tinyllama "
               "(RANDOM weights, made by kvpool-mkmodel)")->capture_default_str();
  c.add_option("--model", o.model, "GGUF model file (default: a generated --preset model)");
  c.add_option("--models-dir", o.models_dir, "where generated models go")->capture_default_str();
  c.add_option("--threads", o.threads, "llama.cpp threads")->capture_default_str();
  c.add_option("--dir", o.dir, "device files")->capture_default_str();
  c.add_option("--out", o.out, "where bench_remote.json goes")->capture_default_str();
}

Status ValidateRemoteBenchOptions(const RemoteBenchOptions& o) {
  KVP_RETURN_IF_ERROR(ParseEndpoints(o.nodes).status());
  if (o.segment_kib < 4 || o.segment_kib > 65536 || o.segment_kib % 4 != 0) {
    return Status::InvalidArgument("--segment-kib " + std::to_string(o.segment_kib) +
                                   ": must be a multiple of 4 in [4, 65536]");
  }
  if (o.mib == 0 || o.mib > (1u << 20)) {
    return Status::InvalidArgument("--mib " + std::to_string(o.mib) + ": must be in [1, 1048576]");
  }
  const uint64_t chunks = DocumentChunks(o);
  if (chunks == 0 || chunks > kMaxLookupChunks) {
    return Status::InvalidArgument(
        "--mib " + std::to_string(o.mib) + " with --segment-kib " + std::to_string(o.segment_kib) +
        " makes " + std::to_string(chunks) + " chunks of " + std::to_string(kLayers) +
        " segments; it must be 1 to " + std::to_string(kMaxLookupChunks));
  }
  if (o.repeats < 1 || o.repeats > 1000) {
    return Status::InvalidArgument("--repeats " + std::to_string(o.repeats) + ": must be in [1, 1000]");
  }
  if (o.io_threads < 1 || o.io_threads > 64) {
    return Status::InvalidArgument("--io-threads " + std::to_string(o.io_threads) + ": must be in [1, 64]");
  }
  if (o.queue_depth < 1 || o.queue_depth > 1024) {
    return Status::InvalidArgument("--queue-depth " + std::to_string(o.queue_depth) +
                                   ": must be in [1, 1024]");
  }
  if (o.threads < 1 || o.threads > 256) {
    return Status::InvalidArgument("--threads " + std::to_string(o.threads) + ": must be in [1, 256]");
  }
  if (o.dir.empty()) return Status::InvalidArgument("--dir: must not be empty");
  if (o.out.empty()) return Status::InvalidArgument("--out: must not be empty");
  return ParseContexts(o.llama_contexts).status();
}

int RunRemoteBench(const RemoteBenchOptions& o, RemoteTtftFn ttft, const std::string& ttft_skipped) {
  if (Status s = ValidateRemoteBenchOptions(o); !s.ok()) {
    return std::cerr << "kvpool bench remote: " << s.message() << "\n", 2;
  }
  std::vector<Endpoint> seeds = *ParseEndpoints(o.nodes);
  std::vector<uint64_t> contexts = *ParseContexts(o.llama_contexts);
  auto fail = [](const Status& s) { return std::cerr << "kvpool bench remote: " << s.ToString() << "\n", 1; };
  std::error_code ec;
  std::filesystem::create_directories(o.dir, ec);
  if (ec) return fail(Status::IOError("--dir '" + o.dir + "': " + ec.message()));
  Result<std::vector<Endpoint>> masters = ClusterMasters(seeds);
  if (!masters.ok()) return fail(masters.status());
  const DeviceOptions redis = RedisTemplate(o, seeds);
  std::string master_list;
  for (const Endpoint& m : *masters) master_list += (master_list.empty() ? "" : ",") + m.ToString();
  std::printf("kvpool bench remote: cluster %s (masters %s), keys %s* (expire after %u s)\n",
              o.nodes.c_str(), master_list.c_str(), redis.key_prefix.c_str(), kTtlSeconds);
  std::printf("machine: %s; %s; load average %s\n\n", MachineDescription().c_str(),
              NowIso8601().c_str(), LoadAverage().c_str());
  json out{{"command", "bench remote"}, {"machine", MachineDescription()}, {"date", NowIso8601()},
           {"nodes", o.nodes}, {"masters", master_list}, {"key_prefix", redis.key_prefix},
           {"ttl_s", kTtlSeconds}, {"repeats", o.repeats}, {"loadavg_start", LoadAverage()}};

  if (Status s = RunThroughput(o, redis, *masters, out); !s.ok()) return fail(s.WithContext("throughput"));
  std::printf("\n");
  if (ttft == nullptr || contexts.empty()) {
    const std::string why = ttft == nullptr ? ttft_skipped : "--llama-contexts none";
    std::printf("B. TTFT with llama.cpp: skipped (%s)\n", why.c_str());
    out["ttft"] = {{"skipped", why}};
  } else {
    std::printf("B. TTFT with llama.cpp\n");
    Result<json> t = ttft(o, redis, contexts);
    if (!t.ok()) return fail(t.status().WithContext("ttft"));
    out["ttft"] = *t;
  }
  std::printf("\n");
  out["netem"] = TryNetem();
  out["loadavg_end"] = LoadAverage();
  std::string path;
  if (Status s = WriteJson(o.out, out, &path); !s.ok()) return fail(s);
  std::printf("results: %s\n", path.c_str());
  return 0;
}

}  // namespace kvpool::cli
