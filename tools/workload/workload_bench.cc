#include "workload_bench.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <unordered_set>

#include "../bench_util.h"
#include "../host_kv.h"
#include "../longdoc/longdoc_bench.h"
#include "util/aligned_buffer.h"
#include "util/clock.h"
#include "workload_result.h"
#include "workload_system.h"

namespace kvpool::cli {
namespace {

constexpr uint64_t kMiB = 1ull << 20;

struct Plan {
  ModelShape shape;
  std::vector<Request> trace;
  size_t restart_at = 0;       // the restart happens before this request
  uint64_t dram_bytes = 0;     // per system, over 2 regions for the pools
  uint64_t extent_bytes = 0;
  uint64_t chunk_bytes = 0;    // all layers of one chunk
  size_t working_set_chunks = 0;
  size_t stored_before_restart = 0;  // distinct chunks the first half stores
  size_t max_chunks = 0;       // of the longest prompt
  uint64_t WorkingSetBytes() const { return working_set_chunks * chunk_bytes; }
};

// Writes the KV bytes of `p` into `kv` (the prompt's chunks, every layer).
void FillPrompt(const Prompt& p, HostKv& kv) {
  for (size_t c = 0; c < p.chunks(); ++c) {
    for (uint32_t l = 0; l < kv.layers(); ++l) p.FillSegment(c, l, kv.Segment(c, l), kv.segment_bytes());
  }
}

Status Bad(const std::string& option, const std::string& why) {
  return Status::InvalidArgument(option + ": " + why);
}

Status CheckOptions(const WorkloadOptions& o) {
  const TraceOptions& t = o.trace;
  if (t.documents == 0) return Bad("--documents", "must be > 0");
  if (t.turns == 0) return Bad("--turns", "must be > 0");
  if (t.turn_tokens == 0) return Bad("--turn-tokens", "must be > 0");
  if (t.requests < 2) return Bad("--requests", "must be >= 2 (the restart is in the middle)");
  if (!(t.zipf >= 0)) return Bad("--zipf", "must be >= 0");
  if (!(t.new_session >= 0 && t.new_session <= 1)) return Bad("--new-session", "must be in [0, 1]");
  if (!(o.dram_mib > 0)) return Bad("--dram-mib", "must be > 0");
  if (!(o.extent_mib > 0)) return Bad("--extent-mib", "must be > 0");
  for (const std::string& s : o.systems) {
    if (s != "kvpool" && s != "partition" && s != "baseline") {
      return Bad("--systems", "unknown system '" + s + "' (kvpool, partition, baseline)");
    }
  }
  if (o.systems.empty()) return Bad("--systems", "name at least one system");
  return Status::OK();
}

Result<Plan> MakePlan(const WorkloadOptions& o) {
  KVP_RETURN_IF_ERROR(CheckOptions(o));
  auto preset = ModelShape::Preset(o.model);
  if (!preset.ok()) return Bad("--model", preset.status().message());
  auto scaled = StoredShape(*preset).Scaled(o.scale);
  if (!scaled.ok()) return Bad("--scale", scaled.status().message());
  Plan p;
  p.shape = *scaled;
  if (o.trace.doc_tokens < p.shape.chunk_tokens) {
    return Bad("--doc-tokens", "must be at least one chunk (" + std::to_string(p.shape.chunk_tokens) + " tokens)");
  }
  p.trace = MakeTrace(o.trace);
  p.restart_at = p.trace.size() / 2;
  p.dram_bytes = static_cast<uint64_t>(o.dram_mib * double(kMiB)) / 8192 * 8192;
  p.extent_bytes = static_cast<uint64_t>(o.extent_mib * double(kMiB)) / 4096 * 4096;
  p.chunk_bytes = p.shape.SegmentPayloadBytes() * p.shape.layers;
  p.working_set_chunks = WorkingSetChunks(o.trace, p.shape, p.trace);
  std::vector<Request> first_half(p.trace.begin(), p.trace.begin() + p.restart_at);
  p.stored_before_restart = WorkingSetChunks(o.trace, p.shape, first_half);
  uint64_t longest = uint64_t{o.trace.doc_tokens} + uint64_t{o.trace.turns} * o.trace.turn_tokens;
  p.max_chunks = longest / p.shape.chunk_tokens;
  if (p.WorkingSetBytes() > p.extent_bytes) {
    return Bad("--extent-mib", "the working set (" + Fixed(double(p.WorkingSetBytes()) / double(kMiB), 1) +
                                   " MiB) exceeds the extent capacity (" +
                                   Fixed(double(p.extent_bytes) / double(kMiB), 1) +
                                   " MiB): raise --extent-mib or shrink the trace");
  }
  return p;
}

DeviceOptions Dram(const std::string& name, uint64_t bytes) {
  DeviceOptions d;
  d.name = name;
  d.kind = DeviceKind::kDram;
  d.capacity_bytes = bytes / 4096 * 4096;
  return d;
}

Result<std::unique_ptr<WorkloadSystem>> OpenSystem(const std::string& name, const WorkloadOptions& o,
                                                   const Plan& p) {
  std::string dir = o.dir + "/" + name;
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);  // every system starts empty
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::InvalidArgument("--dir: cannot create '" + dir + "': " + ec.message());
  if (name == "baseline") {
    LmcacheOptions lo;
    lo.shape = p.shape;
    lo.cpu_capacity_bytes = p.dram_bytes;
    lo.disk_dir = dir + "/lmcache";
    return OpenBaselineWorkloadSystem(name, lo);
  }
  PoolOptions po;
  po.shape = p.shape;
  po.state_dir = dir;
  po.placement = name == "kvpool" ? PlacementMode::kCopies : PlacementMode::kPartition;
  po.devices = {Dram("dram0", p.dram_bytes / 2), Dram("dram1", p.dram_bytes / 2)};
  DeviceOptions ssd;
  ssd.name = "ssd0";
  ssd.kind = DeviceKind::kExtent;
  ssd.path = dir + "/ssd0.extent";
  ssd.capacity_bytes = p.extent_bytes;
  po.devices.push_back(ssd);
  return OpenPoolWorkloadSystem(name, po);
}

std::string Describe(const std::string& name, const Plan& p) {
  std::string dram = Fixed(double(p.dram_bytes) / double(kMiB), 0) + " MiB";
  std::string ext = Fixed(double(p.extent_bytes) / double(kMiB), 0) + " MiB";
  if (name == "baseline") {
    return "LMCache-style: CPU LRU tier " + dram + ", written through to one buffered file per chunk "
           "(fdatasync + fadvise DONTNEED after each write and read; files kept across the restart)";
  }
  return std::string("pool, placement ") + (name == "kvpool" ? "copies" : "partition") + ": 2 DRAM regions (" +
         dram + " in all) + 1 extent (" + ext + ")";
}

class Progress {
 public:
  Progress(size_t total, bool on) : total_(total), on_(on) {}
  void Step(size_t done) {
    if (!on_) return;
    const int width = 30;
    int filled = int(width * done / std::max<size_t>(total_, 1));
    std::fprintf(stderr, "\r[%s%s] request %zu/%zu", std::string(filled, '#').c_str(),
                 std::string(width - filled, '.').c_str(), done, total_);
    if (done == total_) std::fprintf(stderr, "\n");
  }

 private:
  size_t total_;
  bool on_;
};

// The systems under test and what they did, one request at a time.
class Driver {
 public:
  Driver(const WorkloadOptions& o, const Plan& p)
      : o_(o), p_(p), src_(p.shape, p.max_chunks, 0), dst_(p.shape, p.max_chunks, 0) {}

  Status Open() {
    for (const std::string& name : o_.systems) {
      auto s = OpenSystem(name, o_, p_);
      if (!s.ok()) return s.status();
      systems_.push_back(std::move(s).value());
      WorkloadSystemResult r;
      r.name = name;
      r.description = Describe(name, p_);
      r.phases.push_back({"before restart", p_.chunk_bytes});
      results_.push_back(std::move(r));
      marks_.push_back(systems_.back()->Counters());
    }
    return Status::OK();
  }

  // Request i on every system, starting with a different one each time.
  Status Step(size_t i) {
    Prompt prompt(o_.trace, p_.shape, p_.trace[i]);
    FillPrompt(prompt, src_);
    size_t stored = 0;
    while (stored < prompt.chunks() && stored_.count(prompt.keys()[stored])) ++stored;
    for (size_t k = 0; k < systems_.size(); ++k) {
      size_t s = (i + k) % systems_.size();
      KVP_RETURN_IF_ERROR(RunOne(s, i, prompt, stored).WithContext(systems_[s]->name()));
    }
    for (const ChunkKey& key : prompt.keys()) stored_.insert(key);
    return Status::OK();
  }

  // Closes and reopens every system, then makes every read cold.
  Status Restart() {
    for (size_t s = 0; s < systems_.size(); ++s) {
      results_[s].phases.back().io = systems_[s]->Counters() - marks_[s];
      Clock::time_point t = Clock::now();
      auto found = systems_[s]->Restart();
      if (!found.ok()) return found.status();
      results_[s].restart_seconds = SecondsSince(t);
      results_[s].found_after_restart = *found;
      results_[s].phases.push_back({"after restart", p_.chunk_bytes});
    }
    cold_method_ = DropCachesGlobal() ? "drop_caches" : "posix_fadvise(DONTNEED)";
    for (size_t s = 0; s < systems_.size(); ++s) {
      if (cold_method_ != "drop_caches") systems_[s]->MakeCold();
      marks_[s] = systems_[s]->Counters();
    }
    return Status::OK();
  }

  std::vector<WorkloadSystemResult> Finish() {
    for (size_t s = 0; s < systems_.size(); ++s) {
      results_[s].phases.back().io = systems_[s]->Counters() - marks_[s];
    }
    return std::move(results_);
  }

  const std::string& cold_method() const { return cold_method_; }

 private:
  Status RunOne(size_t s, size_t i, const Prompt& prompt, size_t stored) {
    WorkloadSystem& sys = *systems_[s];
    PhaseResult& phase = results_[s].phases.back();
    RequestRecord rec{static_cast<uint32_t>(i), static_cast<uint32_t>(stored), 0,
                      static_cast<uint32_t>(prompt.chunks())};
    dst_.Zero(prompt.chunks());  // bytes not delivered never pass for delivered ones
    CpuTimes cpu0 = CpuTimes::Now();
    Clock::time_point t = Clock::now();
    auto n = sys.Load(prompt.keys(), dst_.View());
    rec.load_seconds = SecondsSince(t);
    CpuTimes load_cpu = CpuTimes::Now() - cpu0;
    if (!n.ok()) return n.status().WithContext("request " + std::to_string(i) + " load");
    if (*n > prompt.chunks()) return Status::Corruption("delivered more chunks than asked for");
    rec.served = static_cast<uint32_t>(*n);
    phase.wrong_bytes += dst_.DifferingBytes(src_, *n);
    cpu0 = CpuTimes::Now();
    t = Clock::now();
    Status st = sys.Store(prompt.keys(), src_.ConstView(), *n);
    rec.store_seconds = SecondsSince(t);
    CpuTimes store_cpu = CpuTimes::Now() - cpu0;
    if (!st.ok()) return st.WithContext("request " + std::to_string(i) + " store");
    phase.cpu_user_seconds += load_cpu.user + store_cpu.user;
    phase.cpu_system_seconds += load_cpu.system + store_cpu.system;
    phase.requests.push_back(rec);
    return Status::OK();
  }

  const WorkloadOptions& o_;
  const Plan& p_;
  HostKv src_, dst_;
  std::vector<std::unique_ptr<WorkloadSystem>> systems_;
  std::vector<WorkloadSystemResult> results_;
  std::vector<SystemCounters> marks_;  // counters at the start of the phase
  std::unordered_set<ChunkKey, ChunkKeyHash> stored_;  // every chunk offered so far
  std::string cold_method_;
};

nlohmann::json ConfigJson(const WorkloadOptions& o, const Plan& p, const std::string& cold) {
  const TraceOptions& t = o.trace;
  char scale[32];
  std::snprintf(scale, sizeof(scale), "%g", o.scale);
  std::string title = o.model + " KV x" + scale + ", " + std::to_string(t.documents) +
                      " docs x " + std::to_string(t.doc_tokens) + " tokens, zipf " + Fixed(t.zipf, 2) +
                      ", working set " + Fixed(double(p.WorkingSetBytes()) / double(p.dram_bytes), 1) +
                      "x DRAM";
  return {{"model", p.shape.name}, {"scale", o.scale}, {"documents", t.documents},
          {"doc_tokens", t.doc_tokens}, {"turns", t.turns}, {"turn_tokens", t.turn_tokens},
          {"zipf", t.zipf}, {"new_session", t.new_session}, {"requests", t.requests},
          {"seed", t.seed}, {"restart_at", p.restart_at}, {"systems", o.systems},
          {"dram_bytes", p.dram_bytes}, {"extent_bytes", p.extent_bytes},
          {"chunk_bytes", p.chunk_bytes}, {"chunk_tokens", p.shape.chunk_tokens},
          {"working_set_chunks", p.working_set_chunks},
          {"chunks_stored_before_restart", p.stored_before_restart}, {"working_set_bytes", p.WorkingSetBytes()},
          {"working_set_over_dram", double(p.WorkingSetBytes()) / double(p.dram_bytes)},
          {"working_set_over_extent", double(p.WorkingSetBytes()) / double(p.extent_bytes)},
          {"cold_after_restart", cold},
          {"baseline_page_cache", "fdatasync + posix_fadvise(DONTNEED) after each chunk file write and read"},
          {"dir", o.dir}, {"machine", MachineDescription()}, {"date", NowIso8601()}, {"title", title}};
}

void PrintPlan(const WorkloadOptions& o, const Plan& p) {
  const TraceOptions& t = o.trace;
  double ws = double(p.WorkingSetBytes());
  std::printf("kvpool bench workload: %s, KV scale %g (%llu KiB/chunk of %u tokens)\n", o.model.c_str(),
              o.scale, static_cast<unsigned long long>(p.chunk_bytes >> 10), p.shape.chunk_tokens);
  std::printf("trace: %u requests over %u documents x %u tokens, zipf %g, sessions of %u turns x %u tokens, "
              "seed %llu; restart before request %zu\n",
              t.requests, t.documents, t.doc_tokens, t.zipf, t.turns, t.turn_tokens,
              static_cast<unsigned long long>(t.seed), p.restart_at);
  std::printf("every system: DRAM %.1f MiB, extent %.1f MiB; working set %zu chunks = %.1f MiB = "
              "%.2fx DRAM, %.2fx extent\n",
              double(p.dram_bytes) / double(kMiB), double(p.extent_bytes) / double(kMiB),
              p.working_set_chunks, ws / double(kMiB), ws / double(p.dram_bytes), ws / double(p.extent_bytes));
  std::fflush(stdout);
}

}  // namespace

int RunWorkloadBench(const WorkloadOptions& o) {
  auto plan = MakePlan(o);
  if (!plan.ok()) return std::cerr << "kvpool bench workload: " << plan.status().message() << "\n", 2;
  PrintPlan(o, *plan);
  Driver driver(o, *plan);
  Status st = driver.Open();
  if (!st.ok()) return std::cerr << "kvpool bench workload: " << st.ToString() << "\n", 1;
  Progress progress(plan->trace.size(), o.progress);
  for (size_t i = 0; i < plan->trace.size(); ++i) {
    if (i == plan->restart_at) st = driver.Restart();
    if (st.ok()) st = driver.Step(i);
    if (!st.ok()) return std::cerr << "\nkvpool bench workload: " << st.ToString() << "\n", 1;
    progress.Step(i + 1);
  }
  WorkloadReport report;
  report.systems = driver.Finish();
  report.config = ConfigJson(o, *plan, driver.cold_method());
  std::printf("after the restart: %s before the next request\n", driver.cold_method().c_str());
  report.PrintTable();
  for (const std::string& path : report.Write(o.out)) std::printf("wrote %s\n", path.c_str());
  uint64_t wrong = 0;
  for (const WorkloadSystemResult& s : report.systems) wrong += s.WrongBytes();
  if (wrong != 0) {
    std::cerr << "kvpool bench workload: " << wrong << " wrong bytes delivered\n";
    return 1;
  }
  return 0;
}

}  // namespace kvpool::cli
