#include "bench_daemon.h"

#include <stdlib.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include <kvpool/client.h>
#include <kvpool/kvpool.h>

#include "bench_util.h"
#include "host_kv.h"
#include "kvpoold_child.h"
#include "ipc/wire.h"
#include "util/aligned_buffer.h"
#include "util/clock.h"
#include "util/page_backing.h"

namespace kvpool::cli {
namespace {

using nlohmann::json;

constexpr int kDaemonRounds = 2;               // alternating rounds per system and configuration
constexpr int kDaemonLatencyRequests = 200;    // one-chunk requests per round
constexpr double kDaemonTarget = 0.90;         // daemon / in-process, 1 MiB segments
constexpr uint32_t kDaemonLayers = 8;
constexpr uint32_t kDaemonKvHeads = 8;
constexpr uint32_t kDaemonHeadDim = 128;
constexpr uint32_t kDaemonClientTimeoutMs = 120000;
constexpr uint64_t k2MiB = 2ull << 20;

// ---------------------------------------------------------------- helpers

// layers=8, kv_heads=8, head_dim=128, dtype 2 bytes: 4 KiB of payload per
// token of a layer, so chunk_tokens = segment_kib / 4 gives the segment exactly.
ModelShape DaemonShape(uint32_t segment_kib) {
  ModelShape s;
  s.name = "bench-daemon-" + std::to_string(segment_kib) + "k";
  s.layers = kDaemonLayers;
  s.kv_heads = kDaemonKvHeads;
  s.head_dim = kDaemonHeadDim;
  s.dtype_bytes = 2;
  s.chunk_tokens = segment_kib / 4;
  return s;
}

std::string DaemonTomlString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string DaemonCommandLine() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string out;
  size_t start = 0;
  while (start < all.size()) {
    size_t end = all.find('\0', start);
    if (end == std::string::npos) end = all.size();
    std::string arg = all.substr(start, end - start);
    if (!out.empty()) out += ' ';
    out += arg.find_first_of(" \t'\"") == std::string::npos ? arg : "'" + arg + "'";
    start = end + 1;
  }
  return out;
}

// "1.23 1.10 0.98" (1, 5 and 15 minutes): other work on the machine skews the numbers.
std::string DaemonLoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a.empty() ? "unknown" : a + " " + b + " " + c;
}

std::string DaemonKernel() {
  std::ifstream in("/proc/sys/kernel/osrelease");
  std::string k;
  std::getline(in, k);
  return k.empty() ? "unknown" : k;
}

// The bench's directory: made with mkdtemp (removed whole at the end) or
// given (only the files made here are removed). Nothing is removed with --keep.
class DaemonScratchDir {
 public:
  static Result<std::unique_ptr<DaemonScratchDir>> Create(const std::string& given, bool keep) {
    std::unique_ptr<DaemonScratchDir> d(new DaemonScratchDir);
    d->keep_ = keep;
    if (given.empty()) {
      std::string templ = "/tmp/kvpool-bench-daemon-XXXXXX";
      if (::mkdtemp(templ.data()) == nullptr) {
        return Status::IOError("cannot create a directory under /tmp (mkdtemp): " + std::string(strerror(errno)));
      }
      d->path_ = templ;
      d->made_ = true;
    } else {
      std::error_code ec;
      std::filesystem::create_directories(given, ec);
      if (ec || !std::filesystem::is_directory(given, ec)) {
        return Status::InvalidArgument("--dir '" + given + "' is not a directory we can create: " + ec.message());
      }
      d->path_ = std::filesystem::absolute(given, ec).lexically_normal().string();
      if (d->path_.size() > 1 && d->path_.back() == '/') d->path_.pop_back();
    }
    return d;
  }
  ~DaemonScratchDir() {
    if (keep_) return;
    std::error_code ec;
    if (made_) {
      std::filesystem::remove_all(path_, ec);
      return;
    }
    for (const std::string& f : files_) std::filesystem::remove(f, ec);
  }
  // A file of the bench in the directory, removed at the end (unless kept).
  std::string File(const std::string& name) {
    files_.push_back(path_ + "/" + name);
    return files_.back();
  }
  const std::string& path() const { return path_; }
  bool made() const { return made_; }
  const std::vector<std::string>& files() const { return files_; }

 private:
  DaemonScratchDir() = default;
  std::string path_;
  bool made_ = false;
  bool keep_ = false;
  std::vector<std::string> files_;
};

// ------------------------------------------------------------- the workload

// One destination of the whole prefix: layer-major, layer l at
// l * chunks * seg, chunk-major inside a layer; 4096-aligned.
struct DaemonKvLayout {
  std::byte* base = nullptr;
  size_t chunks = 0;
  size_t seg = 0;
  uint32_t layers = 0;

  size_t bytes() const { return chunks * seg * layers; }
  std::byte* Layer(uint32_t l) const { return base + size_t{l} * chunks * seg; }
  // Chunks [first, ...) of every layer.
  KvBuffer View(size_t first = 0) const {
    KvBuffer b;
    for (uint32_t l = 0; l < layers; ++l) b.layer_base.push_back(Layer(l) + first * seg);
    b.chunk_stride = seg;
    b.first_chunk = first;
    return b;
  }
  ConstKvBuffer ConstView() const {
    ConstKvBuffer b;
    for (uint32_t l = 0; l < layers; ++l) b.layer_base.push_back(Layer(l));
    b.chunk_stride = seg;
    return b;
  }
  void CopyFrom(HostKv& src) const {
    for (uint32_t l = 0; l < layers; ++l) std::memcpy(Layer(l), src.Segment(0, l), chunks * seg);
  }
  // OK, or Corruption naming the first differing (chunk, layer, byte).
  Status Compare(HostKv& src, const std::string& who) const {
    uint64_t wrong_segments = 0;
    std::string first;
    for (uint32_t l = 0; l < layers; ++l) {
      for (size_t c = 0; c < chunks; ++c) {
        const std::byte* got = Layer(l) + c * seg;
        const std::byte* want = src.Segment(c, l);
        if (std::memcmp(got, want, seg) == 0) continue;
        if (wrong_segments++ == 0) {
          size_t i = 0;
          while (got[i] == want[i]) ++i;
          first = "chunk " + std::to_string(c) + " layer " + std::to_string(l) + " byte " + std::to_string(i);
        }
      }
    }
    if (wrong_segments == 0) return Status::OK();
    return Status::Corruption(who + ": " + std::to_string(wrong_segments) + " of " + std::to_string(chunks * layers) +
                              " retrieved segments differ from the written bytes (first: " + first + ")");
  }
};

Result<double> DaemonTimedRetrieve(Pool& pool, std::span<const ChunkKey> keys, const KvBuffer& dst) {
  Clock::time_point t = Clock::now();
  auto h = pool.Retrieve(keys, dst, {});
  if (!h.ok()) return h.status().WithContext("retrieve");
  auto n = h->Wait();
  const double s = SecondsSince(t);
  if (!n.ok()) return n.status().WithContext("retrieve");
  if (*n != keys.size()) {
    Status e = h->error();
    return Status::IOError("retrieved " + std::to_string(*n) + " of " + std::to_string(keys.size()) + " chunks" +
                           (e.ok() ? "" : " (" + e.ToString() + ")"));
  }
  return s;
}

struct DaemonSystemRuns {
  std::vector<double> seconds;          // timed whole-prefix retrievals, every round
  std::vector<double> latency_seconds;  // one-chunk requests, every round
  std::vector<double> lookup_seconds;   // Lookup of one key (no data moved), every round
  std::vector<double> open_seconds;     // Pool::Open, or kvpoold start until serving + Connect
  std::vector<double> close_seconds;    // pool close, or disconnect + SIGTERM until exit
  std::vector<double> verify_seconds;   // the verified (untimed) retrieval of each round
  double cpu_seconds = 0;               // this process, over the timed retrievals
  double daemon_cpu_seconds = 0;        // kvpoold, over the timed retrievals
  uint64_t minor_faults = 0;            // this process, over the timed retrievals
  uint64_t daemon_minor_faults = 0;     // kvpoold, over the timed retrievals
  uint64_t verify_minor_faults = 0;     // the device's process, over the verified retrievals
  uint64_t zero_copy_bytes = 0;         // client: timed retrievals and one-chunk requests
  uint64_t staged_bytes = 0;            // client: the same, copied through the staging area
  uint64_t recovered_chunks = 0;        // last open
  uint64_t destination_bytes = 0;       // where the timed retrievals land
  uint64_t destination_huge_bytes = 0;  // of which in huge pages (the client's mapping)
  bool verified = false;
};

// The whole prefix `repeats` times, then the one-chunk requests.
Status DaemonMeasure(Pool& pool, std::span<const ChunkKey> keys, const DaemonKvLayout& dst, int repeats,
                     DaemonSystemRuns* out, pid_t daemon_pid) {
  const DaemonProcessUsage self0 = DaemonProcessUsage::Of(-1);
  const DaemonProcessUsage daemon0 = daemon_pid > 0 ? DaemonProcessUsage::Of(daemon_pid) : DaemonProcessUsage{};
  for (int i = 0; i < repeats; ++i) {
    KVP_ASSIGN_OR_RETURN(double s, DaemonTimedRetrieve(pool, keys, dst.View()));
    out->seconds.push_back(s);
  }
  const DaemonProcessUsage self = DaemonProcessUsage::Of(-1) - self0;
  out->cpu_seconds += self.cpu_seconds;
  out->minor_faults += self.minor_faults;
  if (daemon_pid > 0) {
    const DaemonProcessUsage daemon = DaemonProcessUsage::Of(daemon_pid) - daemon0;
    out->daemon_cpu_seconds += daemon.cpu_seconds;
    out->daemon_minor_faults += daemon.minor_faults;
  }
  for (int i = 0; i < kDaemonLatencyRequests; ++i) {
    const size_t c = static_cast<size_t>(i) % keys.size();
    KVP_ASSIGN_OR_RETURN(double s, DaemonTimedRetrieve(pool, keys.first(c + 1), dst.View(c)));
    out->latency_seconds.push_back(s);
  }
  for (int i = 0; i < kDaemonLatencyRequests; ++i) {  // no data: the request's own round trip
    Clock::time_point t = Clock::now();
    const size_t n = pool.Lookup(keys.first(1));
    out->lookup_seconds.push_back(SecondsSince(t));
    if (n != 1) return Status::IOError("Lookup of the first chunk found " + std::to_string(n) + " of 1");
  }
  return Status::OK();
}

// Offloads the whole prefix and waits until it is stored.
Status DaemonOffloadAll(Pool& pool, std::span<const ChunkKey> keys, const ConstKvBuffer& src) {
  auto h = pool.Offload(keys, src);
  if (!h.ok()) return h.status().WithContext("offload");
  auto stored = h->Wait();
  if (!stored.ok()) return stored.status().WithContext("offload");
  if (*stored != keys.size()) {
    return Status::NoSpace("offload stored " + std::to_string(*stored) + " of " + std::to_string(keys.size()) + " chunks");
  }
  pool.Flush();
  return Status::OK();
}

struct DaemonBenchConfig {
  std::string label;   // "SSD", "DRAM"
  std::string device;  // what the device is, in words
  bool persistent = false;
  std::string pool_toml;
  PoolOptions options;
  std::string daemon_config;  // path of kvpoold's TOML
  std::string daemon_log;
  std::string socket;
  uint64_t shared_bytes = 0;
};

struct DaemonBenchContext {
  const DaemonBenchOptions* bo = nullptr;
  std::string kvpoold;
  ModelShape shape;
  size_t chunks = 0;
  std::vector<ChunkKey> keys;
  HostKv* src = nullptr;
  // The in-process destination, allocated (and its pages faulted in) once:
  // every in-process round reuses it.
  AlignedBuffer* in_process_dst = nullptr;
  RegionPages region_pages = RegionPages::kTransparent;  // the client's shared region
};

Status DaemonInProcessRound(const DaemonBenchContext& ctx, const DaemonBenchConfig& cfg, DaemonSystemRuns* out) {
  Clock::time_point t = Clock::now();
  auto pool = Pool::Open(cfg.options);
  if (!pool.ok()) return pool.status().WithContext("in-process Pool::Open");
  out->open_seconds.push_back(SecondsSince(t));
  out->recovered_chunks = (*pool)->Stats().recovered_chunks;
  if (!cfg.persistent) KVP_RETURN_IF_ERROR(DaemonOffloadAll(**pool, ctx.keys, ctx.src->ConstView()).WithContext("in-process"));
  DaemonKvLayout dst{ctx.in_process_dst->data(), ctx.chunks, ctx.shape.SegmentPayloadBytes(), ctx.shape.layers};
  std::memset(dst.base, 0, dst.bytes());  // a miss cannot look like a hit
  const DaemonProcessUsage faults0 = DaemonProcessUsage::Of(-1);
  KVP_ASSIGN_OR_RETURN(double verify_s, DaemonTimedRetrieve(**pool, ctx.keys, dst.View()));
  out->verify_minor_faults += (DaemonProcessUsage::Of(-1) - faults0).minor_faults;
  out->verify_seconds.push_back(verify_s);
  KVP_RETURN_IF_ERROR(dst.Compare(*ctx.src, cfg.label + " in-process"));
  out->verified = true;
  out->destination_bytes = dst.bytes();
  out->destination_huge_bytes = std::min<uint64_t>(dst.bytes(), HugePageBytesMapped(dst.base));
  KVP_RETURN_IF_ERROR(DaemonMeasure(**pool, ctx.keys, dst, ctx.bo->repeats, out, -1).WithContext("in-process"));
  t = Clock::now();
  pool->reset();
  out->close_seconds.push_back(SecondsSince(t));
  return Status::OK();
}

Status DaemonDaemonRound(const DaemonBenchContext& ctx, const DaemonBenchConfig& cfg, DaemonSystemRuns* out) {
  Clock::time_point t = Clock::now();
  KVP_ASSIGN_OR_RETURN(auto child, DaemonChildProcess::Start(ctx.kvpoold, cfg.daemon_config, cfg.daemon_log));
  Status s = [&]() -> Status {
    ClientOptions co;
    co.address = "unix:" + cfg.socket;
    co.shared_bytes = cfg.shared_bytes;
    co.region_pages = ctx.region_pages;
    co.timeout_ms = kDaemonClientTimeoutMs;
    co.reconnect = false;
    auto client = ClientPool::Connect(co);
    if (!client.ok()) return client.status().WithContext("ClientPool::Connect");
    out->open_seconds.push_back(SecondsSince(t));
    out->recovered_chunks = child->RecoveredChunks();
    const size_t bytes = ctx.chunks * ctx.shape.layers * ctx.shape.SegmentPayloadBytes();
    auto shared = (*client)->AllocateShared(bytes);
    if (!shared.ok()) return shared.status().WithContext("AllocateShared");
    DaemonKvLayout dst{shared->data(), ctx.chunks, ctx.shape.SegmentPayloadBytes(), ctx.shape.layers};
    if (!cfg.persistent) {  // from the shared buffer: a zero-copy offload
      dst.CopyFrom(*ctx.src);
      KVP_RETURN_IF_ERROR(DaemonOffloadAll(**client, ctx.keys, dst.ConstView()).WithContext("daemon"));
    }
    std::memset(dst.base, 0, dst.bytes());  // faults the client's pages in; a miss cannot look like a hit
    const DaemonProcessUsage faults0 = DaemonProcessUsage::Of(child->pid());
    KVP_ASSIGN_OR_RETURN(double verify_s, DaemonTimedRetrieve(**client, ctx.keys, dst.View()));
    out->verify_minor_faults += (DaemonProcessUsage::Of(child->pid()) - faults0).minor_faults;
    out->verify_seconds.push_back(verify_s);
    KVP_RETURN_IF_ERROR(dst.Compare(*ctx.src, cfg.label + " daemon"));
    out->verified = true;
    const ClientStats before = (*client)->client_stats();
    KVP_RETURN_IF_ERROR(DaemonMeasure(**client, ctx.keys, dst, ctx.bo->repeats, out, child->pid()).WithContext("daemon"));
    const ClientStats after = (*client)->client_stats();
    out->zero_copy_bytes += after.zero_copy_bytes - before.zero_copy_bytes;
    out->staged_bytes += after.staged_bytes - before.staged_bytes;
    out->destination_bytes = after.region_bytes;
    out->destination_huge_bytes = after.region_huge_bytes;
    if (after.disconnects != before.disconnects) return Status::IOError("the connection to kvpoold was lost");
    t = Clock::now();
    return Status::OK();
  }();
  // Disconnected (client and buffer gone) here; now stop the daemon.
  Status stopped = child->Stop();
  if (!s.ok()) return s;
  KVP_RETURN_IF_ERROR(stopped);
  out->close_seconds.push_back(SecondsSince(t));
  return Status::OK();
}

// Pool TOML of one configuration; the daemon's is it plus a [daemon] table.
std::string DaemonPoolToml(const ModelShape& s, const std::string& device_table) {
  std::ostringstream t;
  t << "# kvpool bench daemon: the pool of both systems\n"
    << "[model]\nname = " << DaemonTomlString(s.name) << "\nlayers = " << s.layers << "\nkv_heads = " << s.kv_heads
    << "\nhead_dim = " << s.head_dim << "\ndtype_bytes = " << s.dtype_bytes << "\nchunk_tokens = " << s.chunk_tokens
    << "\n\n[[device]]\n" << device_table;
  return t.str();
}

Status DaemonFinishConfig(DaemonBenchConfig* cfg, DaemonScratchDir& dir, uint64_t data_bytes) {
  auto parsed = ParsePoolOptions(cfg->pool_toml, "<bench daemon " + cfg->label + ">");
  if (!parsed.ok()) return parsed.status();
  cfg->options = *parsed;
  KVP_RETURN_IF_ERROR(cfg->options.Validate());
  const std::string tag = cfg->label == "SSD" ? "ssd" : "dram";
  cfg->socket = dir.path() + "/kvpoold-" + tag + ".sock";
  dir.File("kvpoold-" + tag + ".sock");
  cfg->daemon_config = dir.File("kvpoold-" + tag + ".toml");
  cfg->daemon_log = dir.File("kvpoold-" + tag + ".log");
  cfg->shared_bytes = RoundUp(data_bytes, k2MiB) + k2MiB;
  const uint64_t max_region = std::max<uint64_t>(4ull << 30, cfg->shared_bytes + k2MiB);
  std::ofstream out(cfg->daemon_config);
  out << cfg->pool_toml << "\n[daemon]\nsocket = " << DaemonTomlString(cfg->socket) << "\nmax_region = " << max_region
      << "\n";
  out.close();
  if (!out) return Status::IOError("cannot write '" + cfg->daemon_config + "'");
  return Status::OK();
}

std::string DaemonExtentTable(const std::string& path, uint64_t capacity, const std::string& engine) {
  std::ostringstream t;
  t << "kind = \"extent\"\nname = \"ssd0\"\npath = " << DaemonTomlString(path) << "\ncapacity = " << capacity
    << "\nbandwidth_gibps = 2\nengine = " << DaemonTomlString(engine) << "\n";
  return t.str();
}

// Writes the prefix once in-process. With engine uring and no io_uring here,
// switches the configuration to psync (printing a note).
Status DaemonWriteOnce(const DaemonBenchContext& ctx, DaemonBenchConfig* cfg, DaemonScratchDir& dir,
                       const std::string& extent_path, uint64_t capacity, uint64_t data_bytes, std::string* engine,
                       double* write_seconds) {
  std::error_code ec;
  std::filesystem::remove(extent_path, ec);  // a fresh extent of this geometry
  Clock::time_point t = Clock::now();
  auto pool = Pool::Open(cfg->options);
  if (!pool.ok() && pool.status().code() == StatusCode::kUnsupported && *engine == "uring") {
    std::printf("note: io_uring is unsupported here (%s); using engine psync\n", pool.status().ToString().c_str());
    *engine = "psync";
    cfg->pool_toml = DaemonPoolToml(ctx.shape, DaemonExtentTable(extent_path, capacity, *engine));
    KVP_RETURN_IF_ERROR(DaemonFinishConfig(cfg, dir, data_bytes));
    std::filesystem::remove(extent_path, ec);
    t = Clock::now();
    pool = Pool::Open(cfg->options);
  }
  if (!pool.ok()) return pool.status().WithContext("in-process Pool::Open for the write");
  KVP_RETURN_IF_ERROR(DaemonOffloadAll(**pool, ctx.keys, ctx.src->ConstView()).WithContext("write"));
  pool->reset();
  *write_seconds = SecondsSince(t);
  return Status::OK();
}

struct DaemonConfigResult {
  DaemonSystemRuns in_process;
  DaemonSystemRuns daemon;
  double write_seconds = 0;
};

json DaemonRunsJson(const DaemonSystemRuns& r, double gib, bool daemon) {
  std::vector<double> lat_us, lookup_us;
  for (double s : r.latency_seconds) lat_us.push_back(s * 1e6);
  for (double s : r.lookup_seconds) lookup_us.push_back(s * 1e6);
  const double med = Median(r.seconds);
  const double timed_gib = gib * double(r.seconds.size());
  json j{{"retrieval_seconds", r.seconds},
         {"retrieval_seconds_median", med},
         {"gibps_median", Div(gib, med)},
         {"gibps_best", Div(gib, r.seconds.empty() ? 0 : *std::min_element(r.seconds.begin(), r.seconds.end()))},
         {"verify_retrieval_seconds", r.verify_seconds},
         {"latency_us", lat_us},
         {"latency_p50_us", Median(lat_us)},
         {"latency_p99_us", Percentile(lat_us, 99)},
         {"lookup_one_key_p50_us", Median(lookup_us)},
         {"lookup_one_key_p99_us", Percentile(lookup_us, 99)},
         {"open_seconds", r.open_seconds},
         {"close_seconds", r.close_seconds},
         {"cpu_seconds_per_gib_this_process", Div(r.cpu_seconds, timed_gib)},
         {"minor_faults_this_process", r.minor_faults},
         {"verify_retrieval_minor_faults", r.verify_minor_faults},
         {"recovered_chunks_last_open", r.recovered_chunks},
         {"destination_huge_page_fraction", Div(double(r.destination_huge_bytes), double(r.destination_bytes))},
         {"verified", r.verified}};
  if (daemon) {
    j["cpu_seconds_per_gib_kvpoold"] = Div(r.daemon_cpu_seconds, timed_gib);
    j["minor_faults_kvpoold"] = r.daemon_minor_faults;
    j["client_zero_copy_bytes"] = r.zero_copy_bytes;
    j["client_staged_bytes"] = r.staged_bytes;
    j["client_region_bytes"] = r.destination_bytes;
    j["client_region_huge_bytes"] = r.destination_huge_bytes;
  }
  return j;
}

}  // namespace

void AddDaemonBenchOptions(CLI::App& c, DaemonBenchOptions& o) {
  c.add_option("--dir", o.dir, "directory for the extent file and kvpoold's socket and config "
                               "(default: a new one under /tmp, removed at the end)");
  c.add_option("--mib", o.mib, "MiB of data in the prefix")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 20))
      ->capture_default_str();
  c.add_option("--segment-kib", o.segment_kib, "segment payload in KiB (a multiple of 4)")
      ->check(CLI::Range(4u, 1u << 20))
      ->capture_default_str();
  c.add_option("--repeats", o.repeats, "timed whole-prefix retrievals per round (median reported)")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  c.add_option("--kvpoold", o.kvpoold, "kvpoold binary (default: next to kvpool, or ../daemon/kvpoold)");
  c.add_option("--engine", o.engine, "extent engine (psync is used when io_uring is unsupported)")
      ->check(CLI::IsMember({"uring", "psync"}))
      ->capture_default_str();
  c.add_option("--region-pages", o.region_pages,
               "pages of the client's shared region: transparent (MADV_HUGEPAGE), hugetlb (reserved 2 MiB "
               "pages, else transparent) or small (4 KiB)")
      ->check(CLI::IsMember({"transparent", "hugetlb", "small"}))
      ->capture_default_str();
  c.add_flag("--keep", o.keep, "keep the directory and its files");
  c.add_option("--json", o.json, "write results as JSON to this file");
}

int RunDaemonBench(const DaemonBenchOptions& bo) {
  const char* me = "kvpool bench daemon";
  if (bo.segment_kib % 4 != 0 || bo.segment_kib == 0) {
    return std::cerr << me << ": --segment-kib " << bo.segment_kib << " must be a positive multiple of 4\n", 2;
  }
  if (bo.engine != "uring" && bo.engine != "psync") {
    return std::cerr << me << ": --engine '" << bo.engine << "' must be uring or psync\n", 2;
  }
  if (bo.repeats < 1) return std::cerr << me << ": --repeats must be at least 1\n", 2;
  DaemonBenchContext ctx;
  ctx.bo = &bo;
  if (bo.region_pages == "hugetlb") {
    ctx.region_pages = RegionPages::kHugetlb;
  } else if (bo.region_pages == "small") {
    ctx.region_pages = RegionPages::kSmall;
  } else if (bo.region_pages != "transparent") {
    return std::cerr << me << ": --region-pages '" << bo.region_pages << "' must be transparent, hugetlb or small\n", 2;
  }
  ctx.shape = DaemonShape(bo.segment_kib);
  if (Status v = ctx.shape.Validate(); !v.ok()) return std::cerr << me << ": --segment-kib: " << v.ToString() << "\n", 2;
  const size_t seg = ctx.shape.SegmentPayloadBytes();
  const uint64_t chunk_bytes = uint64_t{seg} * ctx.shape.layers;
  ctx.chunks = static_cast<size_t>((bo.mib << 20) / chunk_bytes);
  if (ctx.chunks == 0) {
    return std::cerr << me << ": --mib " << bo.mib << " holds no chunk of " << (chunk_bytes >> 20) << " MiB ("
                     << ctx.shape.layers << " layers of " << bo.segment_kib << " KiB)\n", 2;
  }
  if (ctx.chunks > ipc::kMaxKeys) {
    return std::cerr << me << ": " << ctx.chunks << " chunks are more than one request carries\n", 2;
  }
  const uint64_t data_bytes = uint64_t{ctx.chunks} * chunk_bytes;
  const double gib = double(data_bytes) / double(1ull << 30);

  // At the peak (the DRAM configuration through kvpoold): the written data,
  // the in-process destination, the shared region and kvpoold's DRAM region.
  const uint64_t need = data_bytes * 9 / 2;
  if (const uint64_t avail = MemAvailableBytes(); avail > 0 && need > avail) {
    return std::cerr << me << ": --mib " << bo.mib << " needs about " << (need >> 20) << " MiB of memory (4.5 x the data); "
                     << (avail >> 20) << " MiB are available\n", 2;
  }

  auto kvpoold = DaemonFindKvpoold(bo.kvpoold);
  if (!kvpoold.ok()) return std::cerr << me << ": " << kvpoold.status().message() << "\n", 1;
  ctx.kvpoold = *kvpoold;
  auto dir = DaemonScratchDir::Create(bo.dir, bo.keep);
  if (!dir.ok()) return std::cerr << me << ": " << dir.status().ToString() << "\n", bo.dir.empty() ? 1 : 2;

  Namespace ns = Namespace::Make(ctx.shape.Fingerprint(), "");
  std::vector<int32_t> tokens(ctx.chunks * ctx.shape.chunk_tokens);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int32_t(i * 2654435761u % 32000);
  ctx.keys = ChainChunkKeys(ns, tokens, ctx.shape.chunk_tokens);

  std::string engine = bo.engine;
  const std::string extent_path = (*dir)->File("bench.extent");
  const uint64_t capacity = RoundUp(data_bytes + data_bytes / 4, 4096);
  std::error_code space_ec;
  const std::filesystem::space_info space = std::filesystem::space((*dir)->path(), space_ec);
  if (!space_ec && space.available < capacity + (capacity >> 4)) {
    return std::cerr << me << ": the extent file needs about " << (capacity >> 20) << " MiB in '" << (*dir)->path()
                     << "'; " << (space.available >> 20) << " MiB are free (--dir elsewhere, or a smaller --mib)\n", 2;
  }
  std::vector<DaemonBenchConfig> configs(2);
  configs[0].label = "SSD";
  configs[0].persistent = true;
  configs[0].pool_toml = DaemonPoolToml(ctx.shape, DaemonExtentTable(extent_path, capacity, engine));
  configs[1].label = "DRAM";
  configs[1].pool_toml = DaemonPoolToml(ctx.shape, "kind = \"dram\"\nname = \"dram0\"\ncapacity = " +
                                                       std::to_string(capacity) + "\nbandwidth_gibps = 8\n");
  for (DaemonBenchConfig& c : configs) {
    Status s = DaemonFinishConfig(&c, **dir, data_bytes);
    if (!s.ok()) return std::cerr << me << ": " << c.label << " configuration: " << s.ToString() << "\n", 1;
  }

  // Every file of the bench is named by now.
  DaemonSignalGuard signals((*dir)->files(), (*dir)->made() ? (*dir)->path() : "", bo.keep);
  const std::string command = DaemonCommandLine();
  std::printf("kvpool bench daemon: %.2f GiB = %zu chunks x %u layers of %u KiB segments (%s: %u kv heads x %u x "
              "%u tokens x 2 bytes x K,V)\n",
              gib, ctx.chunks, ctx.shape.layers, bo.segment_kib, ctx.shape.name.c_str(), ctx.shape.kv_heads,
              ctx.shape.head_dim, ctx.shape.chunk_tokens);
  std::printf("per configuration: %d alternating rounds (in-process, daemon); each round 1 verified + %d timed "
              "whole-prefix retrievals, then %d one-chunk requests\n",
              kDaemonRounds, bo.repeats, kDaemonLatencyRequests);
  std::printf("kvpoold: %s; dir: %s%s\n", ctx.kvpoold.c_str(), (*dir)->path().c_str(),
              bo.keep ? " (kept)" : ((*dir)->made() ? " (removed at the end)" : ""));
  const std::string load_start = DaemonLoadAverage();
  std::printf("machine: nproc %ld, kernel %s; %s; load average %s; %s\n", sysconf(_SC_NPROCESSORS_ONLN),
              DaemonKernel().c_str(), MachineDescription().c_str(), load_start.c_str(), NowIso8601().c_str());
  std::printf("command: %s\n", command.c_str());
  std::fflush(stdout);
  HostKv src(ctx.shape, ctx.chunks, 7);
  ctx.src = &src;
  AlignedBuffer in_process_dst(data_bytes);  // zeroed: its pages are faulted in here, once
  ctx.in_process_dst = &in_process_dst;

  std::vector<DaemonConfigResult> results(configs.size());
  for (size_t i = 0; i < configs.size(); ++i) {
    DaemonBenchConfig& cfg = configs[i];
    DaemonConfigResult& r = results[i];
    Status s;
    if (cfg.persistent) {
      s = DaemonWriteOnce(ctx, &cfg, **dir, extent_path, capacity, data_bytes, &engine, &r.write_seconds);
      if (!s.ok()) return std::cerr << me << ": " << cfg.label << ": " << s.ToString() << "\n", 1;
    }
    cfg.device = cfg.persistent ? "extent " + extent_path + " (" + engine + ", O_DIRECT)" : "DRAM region";
    for (int round = 0; round < kDaemonRounds && s.ok(); ++round) {
      s = DaemonInProcessRound(ctx, cfg, &r.in_process);
      if (s.ok()) s = DaemonDaemonRound(ctx, cfg, &r.daemon);
    }
    if (!s.ok()) return std::cerr << me << ": " << cfg.label << ": " << s.ToString() << "\n", 1;
  }

  Table t({"config", "device", "in-process GiB/s", "daemon GiB/s", "daemon/in-process", "target 0.90",
           "in-process p50/p99 us", "daemon p50/p99 us", "added us"});
  json rows = json::array();
  bool all_met = true;
  std::string missed;
  for (size_t i = 0; i < configs.size(); ++i) {
    const DaemonConfigResult& r = results[i];
    const double in_gibps = Div(gib, Median(r.in_process.seconds));
    const double d_gibps = Div(gib, Median(r.daemon.seconds));
    const double ratio = Div(d_gibps, in_gibps);
    const bool met = ratio >= kDaemonTarget;
    if (!met) {
      all_met = false;
      missed += (missed.empty() ? "" : ", ") + configs[i].label + " " + Fixed(ratio, 3);
    }
    std::vector<double> in_us, d_us;
    for (double s : r.in_process.latency_seconds) in_us.push_back(s * 1e6);
    for (double s : r.daemon.latency_seconds) d_us.push_back(s * 1e6);
    const double added = Median(d_us) - Median(in_us);
    t.Add({configs[i].label, configs[i].persistent ? "extent (" + engine + ")" : "dram", Fixed(in_gibps, 2),
           Fixed(d_gibps, 2), Fixed(ratio, 3), met ? "met" : "missed",
           Fixed(Median(in_us), 0) + " / " + Fixed(Percentile(in_us, 99), 0),
           Fixed(Median(d_us), 0) + " / " + Fixed(Percentile(d_us, 99), 0), Fixed(added, 0)});
    json row{{"config", configs[i].label},
             {"device", configs[i].device},
             {"pool_toml", configs[i].pool_toml},
             {"in_process", DaemonRunsJson(r.in_process, gib, false)},
             {"daemon", DaemonRunsJson(r.daemon, gib, true)},
             {"ratio_daemon_over_in_process", ratio},
             {"target", kDaemonTarget},
             {"target_met", met},
             {"latency_request_bytes", chunk_bytes},
             {"added_latency_us", added}};
    if (configs[i].persistent) row["write_seconds"] = r.write_seconds;
    rows.push_back(row);
  }
  std::printf("\nmedians over %d timed retrievals of %.2f GiB per system; latency: %d one-chunk (%llu KiB) requests "
              "per system, submit to Wait\n",
              kDaemonRounds * bo.repeats, gib, kDaemonRounds * kDaemonLatencyRequests,
              static_cast<unsigned long long>(chunk_bytes >> 10));
  std::cout << t.Render();
  std::printf("target %.2f: %s%s\n", kDaemonTarget, all_met ? "met" : "missed",
              all_met ? "" : (" (" + missed + ")").c_str());
  if (bo.segment_kib != 1024) std::printf("(the target is set for 1 MiB segments; these are %u KiB)\n", bo.segment_kib);
  for (size_t i = 0; i < configs.size(); ++i) {
    const DaemonConfigResult& r = results[i];
    const double timed_gib = gib * double(r.daemon.seconds.size());
    auto us = [](const std::vector<double>& v) {
      std::vector<double> out;
      for (double x : v) out.push_back(x * 1e6);
      return Median(out);
    };
    using ull = unsigned long long;
    std::printf("%s: verified byte-exact in-process and through kvpoold; the client moved %.2f GiB zero-copy, "
                "%.2f GiB staged\n",
                configs[i].label.c_str(), double(r.daemon.zero_copy_bytes) / double(1ull << 30),
                double(r.daemon.staged_bytes) / double(1ull << 30));
    std::printf("  first retrieval after open (verified, untimed): in-process %.2f GiB/s (%llu page faults), "
                "daemon %.2f GiB/s (%llu page faults in kvpoold)\n",
                Div(gib, Median(r.in_process.verify_seconds)), ull(r.in_process.verify_minor_faults),
                Div(gib, Median(r.daemon.verify_seconds)), ull(r.daemon.verify_minor_faults));
    auto best = [&](const std::vector<double>& v) {
      return v.empty() ? 0.0 : Div(gib, *std::min_element(v.begin(), v.end()));
    };
    const double best_in = best(r.in_process.seconds), best_d = best(r.daemon.seconds);
    std::printf("  timed retrievals: best in-process %.2f GiB/s, daemon %.2f GiB/s (%.3f); page faults in-process "
                "%llu, kvpoold %llu; CPU s/GiB in-process %.3f, daemon %.3f (client) + %.3f (kvpoold)\n",
                best_in, best_d, Div(best_d, best_in), ull(r.in_process.minor_faults), ull(r.daemon.daemon_minor_faults),
                Div(r.in_process.cpu_seconds, gib * double(r.in_process.seconds.size())),
                Div(r.daemon.cpu_seconds, timed_gib), Div(r.daemon.daemon_cpu_seconds, timed_gib));
    std::printf("  destination in huge pages: in-process %.0f %% (AlignedBuffer, MADV_HUGEPAGE), daemon %.0f %% "
                "(the client's shared region, --region-pages %s; shmem_enabled %s)\n",
                100 * Div(double(r.in_process.destination_huge_bytes), double(r.in_process.destination_bytes)),
                100 * Div(double(r.daemon.destination_huge_bytes), double(r.daemon.destination_bytes)),
                bo.region_pages.c_str(), ShmemHugePagesSetting().c_str());
    std::printf("  no data (Lookup of one key) p50: in-process %.1f us, daemon %.1f us; kvpoold serving %.2f s "
                "after its start (median)\n",
                us(r.in_process.lookup_seconds), us(r.daemon.lookup_seconds), Median(r.daemon.open_seconds));
  }
  const std::string load_end = DaemonLoadAverage();
  std::printf("load average at the end: %s (nproc %ld)\n", load_end.c_str(), sysconf(_SC_NPROCESSORS_ONLN));

  if (!bo.json.empty()) {
    json out{{"command", "bench daemon"},
             {"command_line", command},
             {"machine", MachineDescription()},
             {"nproc", sysconf(_SC_NPROCESSORS_ONLN)},
             {"kernel", DaemonKernel()},
             {"load_average_start", load_start},
             {"load_average_end", load_end},
             {"date", NowIso8601()},
             {"kvpoold", ctx.kvpoold},
             {"dir", (*dir)->path()},
             {"engine", engine},
             {"model", ctx.shape.name},
             {"layers", ctx.shape.layers},
             {"segment_bytes", seg},
             {"chunks", ctx.chunks},
             {"bytes", data_bytes},
             {"repeats", bo.repeats},
             {"region_pages", bo.region_pages},
             {"shmem_enabled", ShmemHugePagesSetting()},
             {"rounds", kDaemonRounds},
             {"latency_requests_per_round", kDaemonLatencyRequests},
             {"target", kDaemonTarget},
             {"target_met", all_met},
             {"rows", rows}};
    std::ofstream f(bo.json);
    f << out.dump(2) << "\n";
    f.close();
    if (!f) return std::cerr << me << ": cannot write --json '" << bo.json << "'\n", 1;
    std::printf("results: %s\n", bo.json.c_str());
  }
  return 0;
}

}  // namespace kvpool::cli
