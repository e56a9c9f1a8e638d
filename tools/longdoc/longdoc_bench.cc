#include "longdoc_bench.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "../bench_util.h"
#include "../host_kv.h"
#include "config.h"
#include "lmcache_baseline.h"
#include "longdoc_result.h"
#include "util/aligned_buffer.h"

namespace kvpool::cli {
namespace {

struct Plan {
  ModelShape shape;
  uint64_t dram_bytes = 0;
  uint64_t ssd_bytes = 0;
};

DeviceOptions Dram(const std::string& name, uint64_t bytes) {
  DeviceOptions d;
  d.name = name;
  d.kind = DeviceKind::kDram;
  d.capacity_bytes = bytes / 4096 * 4096;
  return d;
}

DeviceOptions Ssd(const LongDocOptions& o, DeviceKind kind, const std::string& name, uint64_t bytes) {
  DeviceOptions d;
  d.name = name;
  d.kind = kind;
  d.capacity_bytes = bytes / 4096 * 4096;
  d.path = o.dir + "/" + name + (kind == DeviceKind::kExtent ? ".extent" : "");
  // Every system starts empty: an extent of the same pool would otherwise
  // recover the previous system's chunks.
  std::error_code ec;
  std::filesystem::remove_all(d.path, ec);
  return d;
}

PoolOptions BasePool(const LongDocOptions& o, const Plan& p) {
  PoolOptions po;
  po.shape = p.shape;
  po.state_dir = o.dir;
  return po;
}

Result<std::unique_ptr<KvSystem>> MakeSystem(const std::string& name, const LongDocOptions& o,
                                             const Plan& p) {
  if (name == "baseline") {
    auto b = LmcacheBaseline::Open({p.shape, p.dram_bytes, o.dir + "/lmcache"});
    if (!b.ok()) return b.status();
    return std::unique_ptr<KvSystem>(std::move(b).value());
  }
  PoolOptions po = BasePool(o, p);
  if (name == "kvpool" || name == "pool-fs") {
    po.devices = {Dram("dram0", p.dram_bytes / 2), Dram("dram1", p.dram_bytes / 2)};
    po.devices.push_back(name == "kvpool" ? Ssd(o, DeviceKind::kExtent, "ssd0", p.ssd_bytes)
                                          : Ssd(o, DeviceKind::kFilePerChunk, "files0", p.ssd_bytes));
    return NewPoolSystem(name, po);
  }
  if (name == "passthrough-only") {
    PoolOptions dram = po, ssd = po;
    dram.devices = {Dram("dram-tier", p.dram_bytes)};
    ssd.devices = {Ssd(o, DeviceKind::kExtent, "ssd0", p.ssd_bytes)};
    return NewTieredSystem(name, {dram, ssd});
  }
  return Status::InvalidArgument("--systems: unknown system '" + name +
                                 "' (baseline, pool-fs, passthrough-only, kvpool)");
}

std::vector<ChunkKey> DocKeys(const ModelShape& shape, uint64_t context, uint64_t doc) {
  std::vector<int32_t> tokens(context);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int32_t((i * 2654435761u + doc) % 32000);
  return ChainChunkKeys(Namespace::Make(shape.Fingerprint(), "longdoc"), tokens, shape.chunk_tokens);
}

std::vector<DeviceWork> Diff(const std::vector<DeviceWork>& after, const std::vector<DeviceWork>& before) {
  std::vector<DeviceWork> d = after;
  for (size_t i = 0; i < d.size() && i < before.size(); ++i) {
    d[i].bytes_read -= before[i].bytes_read;
    d[i].busy_seconds -= before[i].busy_seconds;
  }
  return d;
}

class Progress {
 public:
  Progress(size_t total, bool on) : total_(total), on_(on) {}
  void Step(const std::string& what) {
    if (!on_) return;
    ++done_;
    const int width = 30;
    int filled = int(width * done_ / std::max<size_t>(total_, 1));
    std::fprintf(stderr, "\r[%s%s] %zu/%zu %-40s", std::string(filled, '#').c_str(),
                 std::string(width - filled, '.').c_str(), done_, total_, what.c_str());
    if (done_ == total_) std::fprintf(stderr, "\n");
  }
  // `steps` will not run (a context that does not fit).
  void Skip(size_t steps) {
    total_ -= std::min(total_, steps);
    if (on_ && done_ > 0 && done_ == total_) std::fprintf(stderr, "\n");
  }

 private:
  size_t total_, done_ = 0;
  bool on_;
};

// A document is generated, stored and checked a window of chunks at a time
// (by default at most about this many bytes), so that only the destination
// holds all of it: a 128K-token document of llama-3.1-8b is 16 GiB of KV.
constexpr uint64_t kDefaultWindowBytes = 1ull << 30;

// KV bytes of one chunk, and of the whole chunks of a `context`-token document.
uint64_t ChunkBytes(const ModelShape& shape) {
  return uint64_t{shape.chunk_tokens} * shape.BytesPerToken();
}
uint64_t DocumentBytes(const ModelShape& shape, uint64_t context) {
  return context / shape.chunk_tokens * ChunkBytes(shape);
}

size_t WindowChunks(const LongDocOptions& o, const ModelShape& shape) {
  if (o.window_chunks > 0) return o.window_chunks;
  return static_cast<size_t>(std::max<uint64_t>(1, kDefaultWindowBytes / ChunkBytes(shape)));
}

// Stores chunks [0, chunks) of the document window by window (each Store
// call holds the whole chain of keys and a source whose first_chunk is the
// window's). Returns the seconds the stores took.
Result<double> StoreDocument(KvSystem& sys, std::span<const ChunkKey> keys, const ModelShape& shape,
                             size_t window, uint64_t seed) {
  double seconds = 0;
  for (size_t first = 0; first < keys.size(); first += window) {
    const size_t n = std::min(window, keys.size() - first);
    HostKv src(shape, n, seed, first);
    auto stored = sys.Store(keys.first(first + n), src.ConstView());
    if (!stored.ok()) return stored.status();
    seconds += *stored;
  }
  return seconds;
}

// True when the first `chunks` chunks of `dst` are the document's bytes.
bool HoldsDocument(const HostKv& dst, const ModelShape& shape, size_t chunks, size_t window,
                   uint64_t seed) {
  for (size_t first = 0; first < chunks; first += window) {
    const size_t n = std::min(window, chunks - first);
    if (!dst.Holds(HostKv(shape, n, seed, first), n)) return false;
  }
  return true;
}

// What a system leaves in the bench directory (MakeSystem's paths).
void RemoveStoredData(const LongDocOptions& o) {
  std::error_code ec;
  for (const char* name : {"ssd0.extent", "files0", "lmcache"}) {
    std::filesystem::remove_all(o.dir + "/" + name, ec);
  }
}

Result<CellResult> RunCell(const std::string& name, const LongDocOptions& o, const Plan& p,
                           uint64_t context, const ComputeModel& cm, Progress& progress) {
  const ModelShape& shape = p.shape;
  const size_t chunks = context / shape.chunk_tokens;
  const size_t cached = static_cast<size_t>(double(chunks) * o.hit_ratio);
  auto sys = MakeSystem(name, o, p);
  if (!sys.ok()) return sys.status();
  std::vector<ChunkKey> keys = DocKeys(shape, context, context);
  CellResult cell{name, context, cached * shape.chunk_tokens, DocumentBytes(shape, context)};
  const size_t window = WindowChunks(o, shape);
  auto stored = StoreDocument(**sys, keys, shape, window, context);
  if (!stored.ok()) return stored.status().WithContext(name + " store");
  cell.offload_seconds = *stored;
  std::span<const ChunkKey> query(keys.data(), cached);
  HostKv dst(shape, chunks, 0);
  std::vector<DeviceWork> before = (*sys)->Work();
  for (int q = 0; q < o.repeats; ++q) {
    if (!DropCachesGlobal()) (*sys)->MakeCold();
    CpuTimes cpu0 = CpuTimes::Now();
    auto load = (*sys)->Load(query, dst.View());
    CpuTimes cpu = CpuTimes::Now() - cpu0;
    if (!load.ok()) return load.status().WithContext(name + " load");
    if (load->chunks != cached) {
      return Status::IOError(name + " delivered " + std::to_string(load->chunks) + " of " +
                             std::to_string(cached) + " chunks");
    }
    if (q == 0) cell.verified = HoldsDocument(dst, shape, cached, window, context);
    uint64_t suffix = context - cell.cached_tokens + o.question_tokens;
    uint64_t layer_bytes = uint64_t{cached} * shape.SegmentPayloadBytes();
    TtftBreakdown t = SimulateTtft(cm, load->layer_ready, layer_bytes, cell.cached_tokens, suffix);
    cell.load_seconds.push_back(load->seconds);
    cell.ttft_seconds.push_back(t.ttft);
    cell.blocked_seconds.push_back(t.blocked_io);
    cell.user_seconds += cpu.user;
    cell.system_seconds += cpu.system;
    cell.query_wall_seconds += load->seconds;
    progress.Step(name + " " + std::to_string(context / 1024) + "K q" + std::to_string(q + 1));
  }
  cell.work = Diff((*sys)->Work(), before);
  if (!cell.verified) return Status::Corruption(name + " returned different KV bytes");
  sys->reset();
  RemoveStoredData(o);
  return cell;
}

// Why `context` cannot run here, or "" when it can: at the peak the bench
// holds the whole document (the destination), one window of its source and
// a system's DRAM tier, next to the kernel's own needs (kHeadroom).
std::string WhyNotFit(const LongDocOptions& o, const Plan& p, uint64_t context) {
  constexpr uint64_t kHeadroom = 1ull << 30;
  const uint64_t doc = DocumentBytes(p.shape, context);
  const uint64_t window = std::min<uint64_t>(doc, WindowChunks(o, p.shape) * ChunkBytes(p.shape));
  const uint64_t need = doc + window + p.dram_bytes + kHeadroom;
  const uint64_t avail = MemAvailableBytes();
  if (avail == 0 || need <= avail) return "";
  return "needs about " + std::to_string(need >> 20) + " MiB of memory (document " +
         std::to_string(doc >> 20) + " MiB + source window " + std::to_string(window >> 20) +
         " MiB + DRAM tier " + std::to_string(p.dram_bytes >> 20) + " MiB + " +
         std::to_string(kHeadroom >> 20) + " MiB headroom); " +
         std::to_string(avail >> 20) + " MiB are available";
}

Plan MakePlan(const LongDocOptions& o, const ModelShape& shape) {
  Plan p{shape};
  uint64_t largest = *std::max_element(o.contexts.begin(), o.contexts.end());
  uint64_t doc_bytes = DocumentBytes(shape, largest);
  p.dram_bytes = o.dram_mib ? o.dram_mib << 20 : std::max<uint64_t>(doc_bytes / 4, 64ull << 20);
  p.ssd_bytes = o.ssd_mib ? o.ssd_mib << 20 : doc_bytes + doc_bytes / 4 + (256ull << 20);
  return p;
}

nlohmann::json ConfigJson(const LongDocOptions& o, const Plan& p, const ComputeModel& cm) {
  return {{"model", p.shape.name}, {"scale", o.scale}, {"contexts", o.contexts},
          {"systems", o.systems}, {"repeats", o.repeats}, {"hit_ratio", o.hit_ratio},
          {"question_tokens", o.question_tokens}, {"dram_bytes", p.dram_bytes},
          {"ssd_bytes", p.ssd_bytes}, {"dir", o.dir}, {"compute_model", cm.Label()},
          {"gpu_tflops", cm.gpu_tflops}, {"h2d_gibps", cm.h2d_gibps},
          {"segment_bytes", p.shape.SegmentPayloadBytes()},
          {"kv_bytes_per_token", p.shape.BytesPerToken()},
          {"machine", MachineDescription()}, {"date", NowIso8601()},
          {"cold_reads", DropCachesGlobal() ? "drop_caches before every query"
                                             : "posix_fadvise(DONTNEED) per file; O_DIRECT"}};
}

}  // namespace

// Stored layers: sliding-window layers keep only their window, which is
// recomputed with the question; the pool holds the full-attention layers.
ModelShape StoredShape(const ModelShape& s) {
  if (s.layer_kinds.empty()) return s;
  ModelShape out = s;
  out.layers = static_cast<uint32_t>(
      std::count(s.layer_kinds.begin(), s.layer_kinds.end(), LayerKind::kFull));
  out.layer_kinds.clear();
  out.sliding_window = 0;
  return out;
}

bool ParseTokenCount(const std::string& text, uint64_t* out) {
  if (text.empty()) return false;
  uint64_t mult = 1;
  std::string digits = text;
  if (digits.back() == 'K' || digits.back() == 'k') {
    mult = 1024;
    digits.pop_back();
  }
  if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) return false;
  *out = std::stoull(digits) * mult;
  return *out > 0;
}

int RunLongDocBench(const LongDocOptions& o) {
  auto preset = ModelShape::Preset(o.model);
  if (!preset.ok()) return std::cerr << "kvpool bench longdoc: --model: " << preset.status().message() << "\n", 2;
  auto scaled = StoredShape(*preset).Scaled(o.scale);
  if (!scaled.ok()) return std::cerr << "kvpool bench longdoc: --scale: " << scaled.status().message() << "\n", 2;
  for (uint64_t c : o.contexts) {
    if (c < scaled->chunk_tokens) return std::cerr << "kvpool bench longdoc: context " << c << " is shorter than a chunk\n", 2;
  }
  Plan plan = MakePlan(o, *scaled);
  ComputeModel cm = ComputeModelFor(o.model, scaled->layers, preset->head_dim);
  cm.gpu_tflops = o.gpu_tflops;
  cm.h2d_gibps = o.h2d_gibps;
  std::error_code ec;
  std::filesystem::create_directories(o.dir, ec);
  std::printf("kvpool bench longdoc: %s, KV scale %g (%zu B/token stored), contexts", o.model.c_str(),
              o.scale, plan.shape.BytesPerToken());
  for (uint64_t c : o.contexts) std::printf(" %lluK", static_cast<unsigned long long>(c / 1024));
  std::printf("\nDRAM %.0f MiB, SSD %.0f MiB for every system; %s\n", plan.dram_bytes / 1048576.0,
              plan.ssd_bytes / 1048576.0, cm.Label().c_str());
#if KVPOOL_HAVE_SPDK
  std::printf("kvpool-spdk: skipped: the long-context bench does not drive the SPDK device yet "
              "(use kvpool bench device --spdk-transport)\n");
#else
  std::printf("kvpool-spdk: skipped: kvpool was built without SPDK (docs/spdk.md)\n");
#endif
  std::fflush(stdout);
  LongDocReport report;
  report.config = ConfigJson(o, plan, cm);
  Progress progress(o.contexts.size() * o.systems.size() * o.repeats, o.progress);
  nlohmann::json skipped = nlohmann::json::array();
  for (uint64_t context : o.contexts) {
    if (std::string why = WhyNotFit(o, plan, context); !why.empty()) {
      std::printf("%lluK: skipped: %s\n", static_cast<unsigned long long>(context / 1024),
                  why.c_str());
      skipped.push_back({{"context", context}, {"reason", why}});
      progress.Skip(o.systems.size() * o.repeats);
      continue;
    }
    for (const std::string& name : o.systems) {
      auto cell = RunCell(name, o, plan, context, cm, progress);
      if (!cell.ok()) return std::cerr << "\nkvpool bench longdoc: " << cell.status().ToString() << "\n", 1;
      report.cells.push_back(std::move(cell).value());
    }
  }
  if (report.cells.empty()) {
    return std::cerr << "kvpool bench longdoc: no context fits in this machine's memory\n", 1;
  }
  report.config["skipped"] = skipped;
  report.PrintTable();
  for (const std::string& path : report.Write(o.out)) std::printf("wrote %s\n", path.c_str());
  return 0;
}

}  // namespace kvpool::cli
