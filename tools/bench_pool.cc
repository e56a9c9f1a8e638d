#include "bench_pool.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <optional>
#include <thread>
#include <nlohmann/json.hpp>

#include <kvpool/kvpool.h>

#include "bench_util.h"
#include "core/pool_impl.h"
#include "default_config.h"
#include "format/layout.h"
#include "fio.h"
#include "host_kv.h"
#include "util/aligned_buffer.h"
#include "util/clock.h"

namespace kvpool::cli {
namespace {

using nlohmann::json;

struct RetrievalRun {
  double seconds = 0;
  double first_layer_seconds = 0;
  CpuTimes cpu;                  // this process, all threads, during the retrieval
  std::vector<PoolStats> stats;  // before, after
};

struct PoolRun {
  std::string label;
  double offload_seconds = 0;
  std::vector<RetrievalRun> runs;
  PoolStats final_stats;
  std::vector<std::string> devices;
  std::string cold_method;
  bool verified = false;
};

Result<RetrievalRun> RetrieveOnce(Pool& pool, std::span<const ChunkKey> keys, HostKv& dst,
                                  std::string* cold) {
  *cold = DropCaches(pool);
  RetrievalRun run;
  run.stats.push_back(pool.Stats());
  std::vector<double> layer_at(pool.options().shape.layers, 0);
  const CpuTimes cpu0 = CpuTimes::Now();
  Clock::time_point start = Clock::now();
  auto h = pool.Retrieve(keys, dst.View(), [&](uint32_t l, size_t) { layer_at[l] = SecondsSince(start); });
  if (!h.ok()) return h.status();
  auto n = h->Wait();
  run.seconds = SecondsSince(start);
  run.cpu = CpuTimes::Now() - cpu0;
  if (!n.ok()) return n.status();
  if (*n != keys.size()) {
    return Status::IOError("retrieved " + std::to_string(*n) + " of " +
                           std::to_string(keys.size()) + " chunks");
  }
  run.first_layer_seconds = layer_at.empty() ? 0 : layer_at[0];
  run.stats.push_back(pool.Stats());
  return run;
}

// Runs after each cold retrieval of RunOnPool, on the open pool: a ceiling
// measured between the retrievals, so that both see the same moments of a
// noisy machine (fio's rate moved 1.8x between runs of one bench here).
using AfterEach = std::function<Status(Pool&)>;

Result<PoolRun> RunOnPool(const PoolOptions& options, const std::string& label,
                          std::span<const ChunkKey> keys, const HostKv& src, int repeats,
                          const AfterEach& after_each = nullptr) {
  auto pool = Pool::Open(options);
  if (!pool.ok()) return pool.status();
  PoolRun out;
  out.label = label;
  if (auto* impl = dynamic_cast<PoolImpl*>(pool->get())) out.devices = impl->DescribeDevices();
  // A persistent pool may hold the prefix from an earlier run: start empty,
  // so that the offload is timed in full.
  (*pool)->Remove(keys);
  Clock::time_point t = Clock::now();
  auto h = (*pool)->Offload(keys, src.ConstView());
  if (!h.ok()) return h.status();
  auto stored = h->Wait();
  out.offload_seconds = SecondsSince(t);
  if (!stored.ok()) return stored.status().WithContext("offload");
  if (*stored != keys.size()) {
    return Status::NoSpace("only " + std::to_string(*stored) + " of " +
                           std::to_string(keys.size()) + " chunks fit in pool '" + label + "'");
  }
  // The offload left the extent's slot table dirty, and its background
  // checkpoint (every 2 s while dirty) would land inside a timed retrieval
  // or ceiling run (the third fio run of five read at half speed): take it
  // now, untimed.
  if (auto* impl = dynamic_cast<PoolImpl*>(pool->get())) {
    KVP_RETURN_IF_ERROR(impl->CheckpointDevices().WithContext("checkpoint after the offload"));
  }
  HostKv dst(options.shape, keys.size(), 0);
  for (int i = 0; i < repeats; ++i) {
    auto run = RetrieveOnce(**pool, keys, dst, &out.cold_method);
    if (!run.ok()) return run.status();
    if (i == 0) {
      out.verified = dst.Equals(src, keys.size());
      if (!out.verified) return Status::Corruption("retrieved bytes differ from the offloaded ones");
    }
    out.runs.push_back(std::move(run).value());
    if (after_each) KVP_RETURN_IF_ERROR(after_each(**pool));
  }
  out.final_stats = (*pool)->Stats();
  return out;
}

std::vector<double> Seconds(const PoolRun& r) {
  std::vector<double> s;
  for (const auto& run : r.runs) s.push_back(run.seconds);
  return s;
}

// Median CPU seconds (user + system, or system only) per GiB retrieved.
double CpuPerGib(const PoolRun& r, double gib, bool system_only) {
  std::vector<double> v;
  for (const auto& run : r.runs) v.push_back((run.cpu.system + (system_only ? 0 : run.cpu.user)) / gib);
  return Median(v);
}

// Capacity that holds a prefix of `bytes` with room for slot rounding.
uint64_t PrefixCapacity(uint64_t bytes) { return (bytes + bytes / 8 + (64ull << 20)) / 4096 * 4096; }

// The same pool reduced to its fastest device, sized for the whole prefix.
PoolOptions FastestAlone(const PoolOptions& full, const PoolStats& stats, uint64_t bytes) {
  size_t best = 0;
  for (size_t i = 0; i < stats.devices.size(); ++i) {
    if (stats.devices[i].bandwidth_gibps > stats.devices[best].bandwidth_gibps) best = i;
  }
  PoolOptions o = full;
  DeviceOptions d = full.devices[best];
  d.name += "-alone";
  d.bandwidth_gibps = stats.devices[best].bandwidth_gibps;
  d.capacity_bytes = std::max<uint64_t>(d.capacity_bytes, PrefixCapacity(bytes));
  if (!d.path.empty()) {
    d.path += ".alone";
    d.reformat = true;
  }
  o.devices = {d};
  return o;
}

// The pool's devices of `kind` alone, together large enough for the prefix;
// a device with a file gets a fresh one beside its own. Empty when the pool
// has no device of that kind.
std::optional<PoolOptions> OnlyKind(const PoolOptions& full, DeviceKind kind, uint64_t bytes) {
  PoolOptions o = full;
  o.devices.clear();
  for (const DeviceOptions& d : full.devices) {
    if (d.kind == kind) o.devices.push_back(d);
  }
  if (o.devices.empty()) return std::nullopt;
  const uint64_t each = PrefixCapacity(bytes) / o.devices.size() / 4096 * 4096;
  for (DeviceOptions& d : o.devices) {
    d.name += "-only";
    d.capacity_bytes = std::max<uint64_t>(d.capacity_bytes, each);
    if (!d.path.empty()) {
      d.path += ".only";
      d.reformat = true;
    }
  }
  return o;
}

constexpr uint64_t kMinFioBytes = 256ull << 20;

// Bytes memcpy copies for a ceiling: the prefix's size, within [256 MiB,
// 1 GiB] so that it measures memory rather than cache, and stays quick.
uint64_t MemcpyBytes(uint64_t bytes) { return std::clamp<uint64_t>(bytes, 256ull << 20, 1ull << 30); }

// RunOnPool with memcpy on `threads` threads measured after each retrieval,
// its GiB/s appended to `runs`. The buffers are allocated by the first
// measurement, after the timed offload, and freed on return, before any
// other pool opens.
Result<PoolRun> RunWithMemcpyCeiling(const PoolOptions& options, const std::string& label,
                                     std::span<const ChunkKey> keys, const HostKv& src,
                                     int repeats, uint64_t bytes, unsigned threads,
                                     std::vector<double>* runs) {
  std::optional<MemcpyCeiling> ceiling;
  return RunOnPool(options, label, keys, src, repeats, [&](Pool&) {
    if (!ceiling) ceiling.emplace(MemcpyBytes(bytes));
    runs->push_back(ceiling->Gibps(threads));
    return Status::OK();
  });
}

// One line of the side-by-side table: a retrieval and its ceiling, both
// measured in this run.
struct Reference {
  std::string what;
  double gibps = 0;
  double cpu_per_gib = 0;   // user + system
  double sys_per_gib = 0;
  std::string ceiling;
  double ceiling_gibps = 0;
  double ceiling_cpu_per_gib = 0;
  std::vector<double> ceiling_runs;  // GiB/s of each ceiling run; ceiling_gibps is their median
  double target = 0;        // ratio asked for; 0: none
  std::string note;         // why a row could not be measured
};

// Fills the retrieval's side of `ref` from the runs of `r`.
void MeasureRetrieval(Reference& ref, const PoolRun& r, double gib) {
  ref.gibps = gib / Median(Seconds(r));
  ref.cpu_per_gib = CpuPerGib(r, gib, false);
  ref.sys_per_gib = CpuPerGib(r, gib, true);
}

void RemoveFiles(const PoolOptions& o) {
  std::error_code ec;
  for (const DeviceOptions& d : o.devices) {
    if (!d.path.empty()) std::filesystem::remove_all(d.path, ec);
  }
}

// The DRAM regions alone against memcpy on every core.
Result<Reference> DramReference(const PoolOptions& full, std::span<const ChunkKey> keys,
                                const HostKv& src, int repeats, uint64_t bytes) {
  auto only = OnlyKind(full, DeviceKind::kDram, bytes);
  const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  Reference ref;
  ref.what = "DRAM regions alone";
  ref.ceiling = "memcpy " + std::to_string(threads) + " threads";
  ref.target = 0.9;
  if (!only) {
    ref.note = "no DRAM region in the configuration";
    return ref;
  }
  KVP_ASSIGN_OR_RETURN(PoolRun run, RunWithMemcpyCeiling(*only, "dram-only", keys, src, repeats,
                                                         bytes, threads, &ref.ceiling_runs));
  MeasureRetrieval(ref, run, double(bytes) / (1ull << 30));
  ref.ceiling_gibps = Median(ref.ceiling_runs);
  ref.ceiling_cpu_per_gib = threads / ref.ceiling_gibps;  // every thread busy
  return ref;
}

// Bytes from the start of the extent file of `pool`'s one device through
// its last slot holding data. A fresh extent hands out its lowest slots first
// (SlotAllocator), so fio reading this range reads what the pool read;
// beyond it lie unwritten blocks, which the file system answers with zeros
// without touching the disk (an 8 GiB file holding 1 GiB let fio "read" at
// page-cache speed).
uint64_t WrittenBytes(const PoolOptions& pool, const PoolStats& stats, uint64_t bytes) {
  const format::Layout l =
      format::ComputeLayout(pool.devices[0].capacity_bytes, pool.shape.SegmentPayloadBytes());
  uint64_t used = 0;
  for (const DeviceStats& d : stats.devices) used += d.segments;
  if (used == 0) used = (bytes + l.slot_payload_bytes - 1) / l.slot_payload_bytes;
  return std::min(l.total_bytes, l.SlotOffset(used));
}

// The extent devices alone against fio (io_uring, O_DIRECT, 1 MiB random
// reads at QD32) on the same file, one fio run after each retrieval; the
// ratio is of the two medians.
Result<Reference> ExtentReference(const PoolOptions& full, std::span<const ChunkKey> keys,
                                  const HostKv& src, int repeats, uint64_t bytes) {
  auto only = OnlyKind(full, DeviceKind::kExtent, bytes);
  Reference ref;
  ref.what = "extent alone";
  ref.ceiling = "fio 1 MiB QD32, same file";
  ref.target = 0.9;
  if (!only) {
    ref.note = "no extent device in the configuration";
    return ref;
  }
  only->devices.resize(1);  // fio reads one file
  only->devices[0].capacity_bytes = std::max(only->devices[0].capacity_bytes, PrefixCapacity(bytes));
  const std::string& path = only->devices[0].path;
  std::vector<FioResult> fios;
  auto fio_once = [&](Pool& pool) -> Status {
    if (!ref.note.empty()) return Status::OK();  // fio failed once: no ceiling
    DropCachesGlobal();
    // At least kMinFioBytes, so that fio runs long enough to be timed.
    auto fio = RunFio(FioJob{path, 0, WrittenBytes(*only, pool.Stats(), bytes),
                             std::max(bytes, kMinFioBytes), 1u << 20, 32, true});
    if (!fio.ok() || fio->gibps <= 0) {
      ref.note = fio.ok() ? "fio moved no bytes" : fio.status().message();
    } else {
      fios.push_back(*fio);
    }
    return Status::OK();
  };
  auto run = RunOnPool(*only, "extent-only", keys, src, repeats, fio_once);
  RemoveFiles(*only);
  if (!run.ok()) return run.status();
  const double gib = double(bytes) / (1ull << 30);
  MeasureRetrieval(ref, *run, gib);
  if (!ref.note.empty()) return ref;
  for (const FioResult& f : fios) ref.ceiling_runs.push_back(f.gibps);  // in run order
  std::sort(fios.begin(), fios.end(), [](auto& a, auto& b) { return a.gibps < b.gibps; });
  const FioResult& fio = fios[fios.size() / 2];
  ref.ceiling_gibps = fio.gibps;
  const double fio_gib = fio.gibps * fio.runtime_seconds;
  ref.ceiling_cpu_per_gib = (fio.user_seconds + fio.system_seconds) / fio_gib;
  ref.ceiling += fio.huge_pages ? ", huge pages" : ", 4 KiB pages";
  // On VMs fio read 1.5-2x slower into 4 KiB pages than into huge pages.
  if (!fio.huge_pages) ref.note = "no free 2 MiB pages for fio: the ratio may flatter the extent";
  return ref;
}

void PrintReferences(const std::vector<Reference>& refs) {
  Table t({"retrieval", "GiB/s", "CPU s/GiB", "sys s/GiB", "ceiling (same run)", "ceiling GiB/s",
           "ceiling CPU s/GiB", "ratio", "target"});
  for (const Reference& r : refs) {
    const bool have = r.ceiling_gibps > 0;
    t.Add({r.what, r.gibps > 0 ? Fixed(r.gibps, 2) : "-", r.gibps > 0 ? Fixed(r.cpu_per_gib, 3) : "-",
           r.gibps > 0 ? Fixed(r.sys_per_gib, 3) : "-", r.ceiling + (r.note.empty() ? "" : " (" + r.note + ")"),
           have ? Fixed(r.ceiling_gibps, 2) : "-", have ? Fixed(r.ceiling_cpu_per_gib, 3) : "-",
           have ? Fixed(Div(r.gibps, r.ceiling_gibps), 2) : "-",
           r.target > 0 ? ">= " + Fixed(r.target, 2) : "-"});
  }
  std::cout << t.Render();
}

json ReferencesJson(const std::vector<Reference>& refs) {
  json a = json::array();
  for (const Reference& r : refs) {
    a.push_back({{"retrieval", r.what}, {"gibps", r.gibps}, {"cpu_seconds_per_gib", r.cpu_per_gib},
                 {"system_seconds_per_gib", r.sys_per_gib}, {"ceiling", r.ceiling},
                 {"ceiling_gibps", r.ceiling_gibps}, {"ceiling_runs_gibps", r.ceiling_runs},
                 {"ceiling_cpu_seconds_per_gib", r.ceiling_cpu_per_gib},
                 {"ratio", Div(r.gibps, r.ceiling_gibps)}, {"target", r.target}, {"note", r.note}});
  }
  return a;
}

void PrintDevices(const PoolRun& r, const ModelShape& shape) {
  Table t({"device", "kind", "role", "group", "solo GiB/s", "placement GiB/s", "weight",
           "live GiB/s", "segments", "read MiB", "busy s", "busy %"});
  double total_bw = 0;
  for (const auto& d : r.final_stats.devices) total_bw += d.bandwidth_gibps;
  const RetrievalRun& last = r.runs.back();
  for (size_t i = 0; i < r.final_stats.devices.size(); ++i) {
    const DeviceStats& a = last.stats[0].devices[i];
    const DeviceStats& b = last.stats[1].devices[i];
    double busy = b.busy_seconds - a.busy_seconds;
    t.Add({b.name, b.kind, b.role, b.contention_group.empty() ? "-" : b.contention_group,
           b.solo_gibps > 0 ? Fixed(b.solo_gibps, 2) : "-",
           Fixed(b.bandwidth_gibps, 2) + (b.bandwidth_probed ? " (probed)" : " (configured)"),
           Fixed(100 * b.bandwidth_gibps / total_bw, 1) + "%",
           b.live_gibps > 0 ? Fixed(b.live_gibps, 2) : "-", std::to_string(b.segments),
           Fixed(double(b.bytes_read - a.bytes_read) / (1 << 20), 0), Fixed(busy, 3),
           Fixed(100 * busy / last.seconds, 0) + "%"});
  }
  (void)shape;
  std::cout << t.Render();
}

json RunJson(const PoolRun& r) {
  json j{{"label", r.label}, {"offload_seconds", r.offload_seconds},
         {"retrieval_seconds", Seconds(r)}, {"cold_reads", r.cold_method},
         {"verified", r.verified}, {"devices", r.devices}};
  json devs = json::array();
  const RetrievalRun& last = r.runs.back();
  for (size_t i = 0; i < r.final_stats.devices.size(); ++i) {
    const DeviceStats& a = last.stats[0].devices[i];
    const DeviceStats& b = last.stats[1].devices[i];
    devs.push_back({{"name", b.name}, {"kind", b.kind}, {"role", b.role},
                    {"contention_group", b.contention_group}, {"solo_gibps", b.solo_gibps},
                    {"live_gibps", b.live_gibps}, {"bandwidth_gibps", b.bandwidth_gibps},
                    {"segments", b.segments}, {"bytes_read", b.bytes_read - a.bytes_read},
                    {"busy_seconds", b.busy_seconds - a.busy_seconds}});
  }
  j["device_stats_last_run"] = devs;
  j["glt_bytes_per_segment"] = r.final_stats.glt_bytes_per_segment;
  return j;
}

}  // namespace

int RunPoolBench(const PoolBenchOptions& bo) {
  auto loaded = LoadConfig(bo.config, bo.state_dir);
  if (!loaded.ok()) return std::cerr << "kvpool bench: " << loaded.status().ToString() << "\n", 2;
  PoolOptions options = *loaded;
  if (!bo.model.empty()) {
    auto s = ModelShape::Preset(bo.model);
    if (!s.ok()) return std::cerr << "kvpool bench: --model: " << s.status().message() << "\n", 2;
    options.shape = *s;
  }
  auto scaled = options.shape.Scaled(bo.scale);
  if (!scaled.ok()) return std::cerr << "kvpool bench: --scale: " << scaled.status().message() << "\n", 2;
  options.shape = *scaled;
  const ModelShape& shape = options.shape;
  size_t chunks = bo.tokens / shape.chunk_tokens;
  if (chunks == 0) return std::cerr << "kvpool bench: --tokens must be >= " << shape.chunk_tokens << "\n", 2;
  uint64_t bytes = uint64_t{chunks} * shape.layers * shape.SegmentPayloadBytes();
  std::printf("kvpool bench pool: %s (scale %g), %zu tokens = %zu chunks x %u layers, "
              "segment %.0f KiB, %.2f GiB\n", shape.name.c_str(), bo.scale, chunks * shape.chunk_tokens,
              chunks, shape.layers, shape.SegmentPayloadBytes() / 1024.0, double(bytes) / (1ull << 30));
  std::printf("machine: %s; %s\n", MachineDescription().c_str(), NowIso8601().c_str());

  Namespace ns = Namespace::Make(shape.Fingerprint(), "bench");
  std::vector<int32_t> tokens(chunks * shape.chunk_tokens);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int32_t(i * 2654435761u % 32000);
  std::vector<ChunkKey> keys = ChainChunkKeys(ns, tokens, shape.chunk_tokens);
  HostKv src(shape, chunks, 1);

  std::vector<double> memcpy_runs;  // one thread, measured after each retrieval
  auto pooled =
      RunWithMemcpyCeiling(options, "pool", keys, src, bo.repeats, bytes, 1, &memcpy_runs);
  if (!pooled.ok()) return std::cerr << "kvpool bench: " << pooled.status().ToString() << "\n", 1;
  std::printf("\npool of %zu devices (cold reads: %s):\n", options.devices.size(),
              pooled->cold_method.c_str());
  for (const auto& d : pooled->devices) std::printf("  %s\n", d.c_str());
  PrintDevices(*pooled, shape);

  double pool_med = Median(Seconds(*pooled));
  double total_bw = 0;
  for (const auto& d : pooled->final_stats.devices) total_bw += d.bandwidth_gibps;
  double gib = double(bytes) / (1ull << 30);
  json out{{"command", "bench pool"}, {"machine", MachineDescription()}, {"date", NowIso8601()},
           {"model", shape.name}, {"scale", bo.scale}, {"tokens", chunks * shape.chunk_tokens},
           {"bytes", bytes}, {"pool", RunJson(*pooled)}};
  Table summary({"measure", "value"});
  summary.Add({"offload (s)", Fixed(pooled->offload_seconds, 3)});
  summary.Add({"retrieval median / p90 (s)",
               Fixed(pool_med, 4) + " / " + Fixed(Percentile(Seconds(*pooled), 90), 4)});
  summary.Add({"retrieval GiB/s", Fixed(gib / pool_med, 2)});
  summary.Add({"sum of device bandwidths (GiB/s)", Fixed(total_bw, 2)});
  summary.Add({"pool / ideal (sum of bandwidths)", Fixed(gib / pool_med / total_bw, 2)});
  const double memcpy_gibps = Median(memcpy_runs);
  summary.Add({"memcpy 1 thread (GiB/s)", Fixed(memcpy_gibps, 2)});
  out["memcpy_gibps"] = memcpy_gibps;
  if (bo.compare_alone) {
    PoolOptions alone = FastestAlone(options, pooled->final_stats, bytes);
    auto single = RunOnPool(alone, alone.devices[0].name, keys, src, bo.repeats);
    if (!single.ok()) return std::cerr << "kvpool bench: " << single.status().ToString() << "\n", 1;
    double alone_med = Median(Seconds(*single));
    summary.Add({"fastest device alone (" + alone.devices[0].name + ") median (s)",
                 Fixed(alone_med, 4)});
    summary.Add({"pool time / fastest alone", Fixed(pool_med / alone_med, 2)});
    out["fastest_alone"] = RunJson(*single);
    std::error_code ec;
    if (!alone.devices[0].path.empty()) std::filesystem::remove_all(alone.devices[0].path, ec);
  }
  std::printf("\nsummary (median of %d cold retrievals, verified byte-exact):\n", bo.repeats);
  std::cout << summary.Render();
  if (bo.references) {
    std::vector<Reference> refs;
    Reference whole;
    whole.what = "pool (all devices)";
    MeasureRetrieval(whole, *pooled, gib);
    whole.ceiling = "memcpy 1 thread";
    whole.ceiling_gibps = memcpy_gibps;
    whole.ceiling_cpu_per_gib = 1 / memcpy_gibps;
    whole.ceiling_runs = memcpy_runs;
    refs.push_back(whole);
    for (auto* measure : {&DramReference, &ExtentReference}) {
      auto r = measure(options, keys, src, bo.repeats, bytes);
      if (!r.ok()) return std::cerr << "kvpool bench: " << r.status().ToString() << "\n", 1;
      refs.push_back(*r);
    }
    std::printf("\nside by side with the ceilings, measured in this run (medians of %d, each "
                "ceiling run right after a retrieval; CPU: this process's user + system time):\n",
                bo.repeats);
    PrintReferences(refs);
    out["references"] = ReferencesJson(refs);
  }
  if (!bo.json.empty()) {
    std::ofstream(bo.json) << out.dump(2) << "\n";
    std::printf("results: %s\n", bo.json.c_str());
  }
  return 0;
}

}  // namespace kvpool::cli
