#include "bench_pool.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include <kvpool/kvpool.h>

#include "bench_util.h"
#include "core/pool_impl.h"
#include "default_config.h"
#include "host_kv.h"
#include "util/aligned_buffer.h"
#include "util/clock.h"

namespace kvpool::cli {
namespace {

using nlohmann::json;

struct RetrievalRun {
  double seconds = 0;
  double first_layer_seconds = 0;
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
  Clock::time_point start = Clock::now();
  auto h = pool.Retrieve(keys, dst.View(), [&](uint32_t l, size_t) { layer_at[l] = SecondsSince(start); });
  if (!h.ok()) return h.status();
  auto n = h->Wait();
  run.seconds = SecondsSince(start);
  if (!n.ok()) return n.status();
  if (*n != keys.size()) {
    return Status::IOError("retrieved " + std::to_string(*n) + " of " +
                           std::to_string(keys.size()) + " chunks");
  }
  run.first_layer_seconds = layer_at.empty() ? 0 : layer_at[0];
  run.stats.push_back(pool.Stats());
  return run;
}

Result<PoolRun> RunOnPool(const PoolOptions& options, const std::string& label,
                          std::span<const ChunkKey> keys, const HostKv& src, int repeats) {
  auto pool = Pool::Open(options);
  if (!pool.ok()) return pool.status();
  PoolRun out;
  out.label = label;
  if (auto* impl = dynamic_cast<PoolImpl*>(pool->get())) out.devices = impl->DescribeDevices();
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
  HostKv dst(options.shape, keys.size(), 0);
  for (int i = 0; i < repeats; ++i) {
    auto run = RetrieveOnce(**pool, keys, dst, &out.cold_method);
    if (!run.ok()) return run.status();
    if (i == 0) {
      out.verified = dst.Equals(src, keys.size());
      if (!out.verified) return Status::Corruption("retrieved bytes differ from the offloaded ones");
    }
    out.runs.push_back(std::move(run).value());
  }
  out.final_stats = (*pool)->Stats();
  return out;
}

std::vector<double> Seconds(const PoolRun& r) {
  std::vector<double> s;
  for (const auto& run : r.runs) s.push_back(run.seconds);
  return s;
}

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
  uint64_t need = bytes + bytes / 8 + (64ull << 20);
  d.capacity_bytes = std::max<uint64_t>(d.capacity_bytes, need / 4096 * 4096);
  if (!d.path.empty()) {
    d.path += ".alone";
    d.reformat = true;
  }
  o.devices = {d};
  return o;
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

  auto pooled = RunOnPool(options, "pool", keys, src, bo.repeats);
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
  double memcpy_gibps = MemcpyGibps(std::min<uint64_t>(bytes, 1ull << 30));
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
  if (!bo.json.empty()) {
    std::ofstream(bo.json) << out.dump(2) << "\n";
    std::printf("results: %s\n", bo.json.c_str());
  }
  return 0;
}

}  // namespace kvpool::cli
