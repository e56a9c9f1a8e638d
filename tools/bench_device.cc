#include "bench_device.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <span>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>

#include "bench_util.h"
#include "core/device_runner.h"
#include "core/io_waiter.h"
#include "fio.h"
#include "spdk_perf.h"
#include "uring_ceiling.h"
#include "util/aligned_buffer.h"
#include "util/clock.h"

namespace kvpool::cli {
namespace {

using nlohmann::json;

struct Measure {
  double gibps = 0;
  double user_per_gib = 0;
  double sys_per_gib = 0;
  double in_flight = 0;     // mean transfers in flight over the run's wall time
  uint64_t bounced = 0;     // reads whose payload went through a bounce buffer
};

// The segments of one size: their payloads, tags and checksums.
struct Dataset {
  uint32_t payload = 0;
  uint32_t count = 0;
  AlignedBuffer data;
  std::vector<uint64_t> checksums;
  std::vector<uint32_t> read_order;  // one shared shuffle

  std::vector<SegmentIo> Ops(IoKind kind, AlignedBuffer* into) const {
    std::vector<SegmentIo> ops(count);
    for (uint32_t k = 0; k < count; ++k) {
      uint32_t i = kind == IoKind::kRead ? read_order[k] : k;
      SegmentIo& op = ops[k];
      op.kind = kind;
      op.slot = i;
      op.length = payload;
      std::byte* base = kind == IoKind::kRead ? (into ? into->data() : nullptr) : data.data();
      op.buffer = base ? base + size_t{i} * payload : nullptr;  // null: the reader places it
      op.tag.chunk = ChunkKey{payload, i + 1ull};
      op.checksum = checksums.empty() ? 0 : checksums[i];
    }
    return ops;
  }
};

Result<std::unique_ptr<DeviceRunner>> OpenRunner(DeviceOptions d, uint32_t payload) {
  auto dev = OpenDevice(d, payload, ChunkKey{0x6b76, payload});
  if (!dev.ok()) return dev.status();
  return DeviceRunner::Start(std::move(dev).value(), 0);
}

Status WriteAll(DeviceRunner& runner, Dataset& ds) {
  std::vector<SegmentIo> ops = ds.Ops(IoKind::kWrite, nullptr);
  IoWaiter waiter;
  KVP_RETURN_IF_ERROR(waiter.Run(runner, ops));
  ds.checksums.clear();
  for (const SegmentIo& op : ops) ds.checksums.push_back(op.checksum);
  runner.device().Checkpoint().ok();
  return Status::OK();
}

// Reads ops (every segment, in the shared order) the way fio reads: into a
// few buffers of one segment each, a finished read's buffer taking the next
// segment. Twice queue_depth of them, because a buffer comes back only once
// its read is verified (fio verifies nothing), and reads should go on
// meanwhile. A reader of a whole prefix writes a fresh destination
// as large as the prefix; fio's few buffers stay in the caches and TLBs of
// the guest and, on a VM whose disk the host serves from memory, of the
// host, which alone moved a plain io_uring reader 1.5-2x there. This
// measures the device's read path on fio's terms, and a GPU server's too
// (a ring of pinned staging buffers).
class RingReader final : public IoOwner {
 public:
  RingReader(DeviceRunner& runner, std::span<SegmentIo> ops) : runner_(runner), ops_(ops) {}

  // Submits the first `buffers` ops into consecutive segments of `ring`, the
  // rest as buffers come back; returns once every op completed (the first
  // error, if any).
  Status Run(AlignedBuffer& ring, uint32_t buffers) {
    const size_t first = std::min<size_t>(buffers, ops_.size());
    std::vector<SegmentIo*> start;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (size_t i = 0; i < first; ++i) {
        ops_[i].owner = this;
        ops_[i].buffer = ring.data() + i * ops_[i].length;
        start.push_back(&ops_[i]);
      }
      next_ = first;
    }
    if (!start.empty()) runner_.Submit(start);
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return done_ == ops_.size(); });
    return error_;
  }

  void OnIoComplete(SegmentIo& io) override {
    SegmentIo* next = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!io.status.ok() && error_.ok()) error_ = io.status;
      if (next_ < ops_.size()) {
        next = &ops_[next_++];
        next->owner = this;
        next->buffer = io.buffer;
      }
      if (++done_ == ops_.size()) cv_.notify_all();
    }
    if (next != nullptr) runner_.Submit(std::span<SegmentIo* const>(&next, 1));
  }

 private:
  DeviceRunner& runner_;
  std::span<SegmentIo> ops_;
  std::mutex mu_;
  std::condition_variable cv_;
  size_t next_ = 0;  // guarded by mu_
  size_t done_ = 0;  // guarded by mu_
  Status error_;     // guarded by mu_
};

// Cold reads of every segment in the shared random order; checksums verified.
// ring: into 2 x queue_depth reused buffers (RingReader), not a destination
// of the dataset's size.
Result<Measure> ReadAll(DeviceRunner& runner, const Dataset& ds, bool ring = false) {
  // Touched before the clock starts (AlignedBuffer zero-fills), as fio's
  // buffers are: the run measures the device, not first-touch page faults.
  const uint32_t depth = std::max<uint32_t>(1, runner.device().options().queue_depth);
  // A ring is 2 MiB-aligned whatever its size, so that it lies in huge
  // pages as fio's buffers do (AlignedBuffer advises them from 4 MiB on):
  // into 4 KiB pages a VM's disk read 1.5-2x slower here.
  const uint32_t ring_buffers = std::min(2 * depth, ds.count);
  AlignedBuffer into = ring ? AlignedBuffer(size_t{ring_buffers} * ds.payload, 2u << 20)
                            : AlignedBuffer(size_t{ds.count} * ds.payload);
  std::vector<SegmentIo> ops = ds.Ops(IoKind::kRead, ring ? nullptr : &into);
  const double in_flight0 = runner.in_flight_seconds();
  const uint64_t bounced0 = runner.counters().bounced_segments.load();
  CpuTimes cpu0 = CpuTimes::Now();
  Clock::time_point t = Clock::now();
  Status s;
  if (ring) {
    s = RingReader(runner, ops).Run(into, ring_buffers);
  } else {
    IoWaiter waiter;
    s = waiter.Run(runner, ops);
  }
  double secs = SecondsSince(t);
  CpuTimes cpu = CpuTimes::Now() - cpu0;
  if (!s.ok()) return s;
  double gib = double(ds.count) * ds.payload / double(1ull << 30);
  return Measure{gib / secs, cpu.user / gib, cpu.system / gib,
                 (runner.in_flight_seconds() - in_flight0) / secs,
                 runner.counters().bounced_segments.load() - bounced0};
}

Measure MedianMeasure(const std::vector<Measure>& runs) {
  std::vector<double> g, u, sy, q;
  uint64_t bounced = 0;
  for (const Measure& m : runs) {
    g.push_back(m.gibps);
    u.push_back(m.user_per_gib);
    sy.push_back(m.sys_per_gib);
    q.push_back(m.in_flight);
    bounced = std::max(bounced, m.bounced);
  }
  return {Median(g), Median(u), Median(sy), Median(q), bounced};
}

// The run of median throughput (its CPU figures come with it).
FioResult MedianFio(std::vector<FioResult> runs) {
  std::sort(runs.begin(), runs.end(), [](auto& a, auto& b) { return a.gibps < b.gibps; });
  return runs[runs.size() / 2];
}

// `v` with `digits` decimals when spdk_nvme_perf ran, "-" otherwise.
std::string IfRun(const SpdkPerfResult& perf, double v, int digits) {
  if (perf.gibps <= 0) return "-";
  return Fixed(v, digits);
}

// CPU seconds per GiB; getrusage ticks are coarse, so tiny values print as a bound.
std::string CpuCell(double v, double gib) {
  double floor = 0.004 / std::max(gib, 1e-9);  // ~one 4 ms tick over the run
  return v < floor ? std::string("<") + Fixed(floor, 4) : Fixed(v, 4);
}

struct SizeResult {
  uint32_t kib = 0;
  std::vector<uint32_t> depths;
  std::vector<Measure> extent, files, spdk;  // spdk: empty without --spdk-transport
  std::vector<Measure> extent_ring;          // the extent into a ring (RingReader)
  std::vector<FioResult> fio;
  std::vector<double> uring;  // GiB/s of RunUringCeiling, median; 0 when it could not run
  std::string spdk_describe;  // the SPDK device's Describe() after its last run
  std::vector<SpdkPerfResult> perf;  // spdk_nvme_perf, median; gibps 0 when not run
  std::string perf_note;             // why spdk_nvme_perf did not run ("" when it did)
};

// The run of median throughput.
SpdkPerfResult MedianPerf(std::vector<SpdkPerfResult> runs) {
  if (runs.empty()) return {};
  std::sort(runs.begin(), runs.end(), [](auto& a, auto& b) { return a.gibps < b.gibps; });
  return runs[runs.size() / 2];
}

Result<SizeResult> BenchOneSize(const DeviceBenchOptions& o, uint32_t kib, std::string* cold) {
  Dataset ds;
  ds.payload = kib * 1024;
  ds.count = static_cast<uint32_t>((o.mib << 20) / ds.payload);
  ds.data = AlignedBuffer(size_t{ds.count} * ds.payload);
  FillPattern(ds.data.data(), ds.data.size(), kib);
  ds.read_order.resize(ds.count);
  for (uint32_t i = 0; i < ds.count; ++i) ds.read_order[i] = i;
  std::shuffle(ds.read_order.begin(), ds.read_order.end(), std::mt19937(42));

  DeviceOptions ext;
  ext.name = "extent-" + std::to_string(kib) + "k";
  ext.kind = DeviceKind::kExtent;
  ext.path = o.dir + "/bench.extent";
  ext.capacity_bytes = uint64_t{ds.count} * (ds.payload + 4096);
  ext.engine = o.engine;
  ext.reformat = true;
  ext.queue_depth = 32;
  ext.zero_copy = o.zero_copy;
  DeviceOptions files = ext;
  files.name = "files-" + std::to_string(kib) + "k";
  files.kind = DeviceKind::kFilePerChunk;
  files.path = o.dir + "/files";
  files.capacity_bytes = uint64_t{ds.count} * ds.payload;
  files.reformat = false;
  std::error_code ec;
  std::filesystem::remove(ext.path, ec);

  DeviceOptions spdk = ext;
  spdk.name = "spdk-" + std::to_string(kib) + "k";
  spdk.kind = DeviceKind::kSpdk;
  spdk.path.clear();
  spdk.transport = o.spdk_transport;
  spdk.capacity_bytes = uint64_t{ds.count} * ds.payload;

  SizeResult r;
  r.kib = kib;
  r.depths = o.depths;
  auto fr = OpenRunner(files, ds.payload);
  if (!fr.ok()) return fr.status();
  {
    auto er = OpenRunner(ext, ds.payload);
    if (!er.ok()) return er.status();
    KVP_RETURN_IF_ERROR(WriteAll(**er, ds));
  }
  if (!spdk.transport.empty()) {
    auto sr = OpenRunner(spdk, ds.payload);
    if (!sr.ok()) return sr.status().WithContext("SPDK device");
    KVP_RETURN_IF_ERROR(WriteAll(**sr, ds));
  }
  KVP_RETURN_IF_ERROR(WriteAll(**fr, ds));
  ext.reformat = false;
  spdk.reformat = false;
  struct stat st {};
  ::stat(ext.path.c_str(), &st);
  for (uint32_t qd : o.depths) {
    ext.queue_depth = qd;
    spdk.queue_depth = qd;
    std::vector<Measure> e, er_ring, f, sp;
    std::vector<FioResult> fio;
    std::vector<double> uring;
    std::vector<SpdkPerfResult> perf;
    // One pass of each reader per repeat, in an order that rotates from
    // repeat to repeat, so that no reader always comes first (after the
    // writes or a pause) or always follows the same one: a virtual disk's
    // rate swings within seconds (fio's own moved 2x between identical
    // back-to-back runs on the project's VM), and a fixed order could turn
    // such a pattern into a ratio.
    auto read_extent = [&](bool ring) -> Status {
      auto er = OpenRunner(ext, ds.payload);
      if (!er.ok()) return er.status();
      *cold = DropCachesGlobal() ? "drop_caches + O_DIRECT" : "O_DIRECT; file device: fadvise";
      auto m = ReadAll(**er, ds, ring);
      if (!m.ok()) return m.status().WithContext(ring ? "extent read into a ring" : "extent read");
      (ring ? er_ring : e).push_back(*m);
      return Status::OK();
    };
    auto read_spdk = [&]() -> Status {  // no page cache on this path: always cold
      if (spdk.transport.empty()) return Status::OK();
      auto sr = OpenRunner(spdk, ds.payload);
      if (!sr.ok()) return sr.status().WithContext("SPDK device");
      auto ms = ReadAll(**sr, ds);
      if (!ms.ok()) return ms.status().WithContext("SPDK read");
      sp.push_back(*ms);
      r.spdk_describe = (*sr)->device().Describe();
      sr->reset();
      auto pr = RunSpdkNvmePerf({o.spdk_transport, ds.payload, qd, o.perf_seconds});
      if (pr.ok()) {
        perf.push_back(*pr);
      } else if (pr.status().code() == StatusCode::kUnsupported) {
        r.perf_note = pr.status().message();  // not installed: the column says why
      } else {
        return pr.status();
      }
      return Status::OK();
    };
    auto read_files = [&]() -> Status {
      if (!DropCachesGlobal()) (*fr)->device().DropCaches();
      auto mf = ReadAll(**fr, ds);
      if (!mf.ok()) return mf.status().WithContext("file-per-chunk read");
      f.push_back(*mf);
      return Status::OK();
    };
    auto read_fio = [&]() -> Status {
      const uint64_t bytes = uint64_t{ds.count} * ds.payload;
      FioJob job{ext.path, 0, uint64_t(st.st_size), bytes, ds.payload, qd};
      DropCachesGlobal();
      auto fr_run = RunFio(job);
      if (!fr_run.ok()) return fr_run.status();
      fio.push_back(*fr_run);
      Result<double> u = RunUringCeiling(job);  // the same job, into a reader's memory
      uring.push_back(u.ok() ? *u : 0);
      return Status::OK();
    };
    const std::function<Status()> readers[] = {[&] { return read_extent(false); }, read_spdk,
                                               [&] { return read_extent(true); }, read_files,
                                               read_fio};
    constexpr int kReaders = 5;
    for (int rep = 0; rep < o.repeats; ++rep) {
      for (int i = 0; i < kReaders; ++i) {
        KVP_RETURN_IF_ERROR(readers[(rep + i) % kReaders]());
      }
    }
    r.extent.push_back(MedianMeasure(e));
    r.extent_ring.push_back(MedianMeasure(er_ring));
    r.files.push_back(MedianMeasure(f));
    if (!sp.empty()) {
      r.spdk.push_back(MedianMeasure(sp));
      r.perf.push_back(MedianPerf(perf));
    }
    r.fio.push_back(MedianFio(fio));
    r.uring.push_back(Median(uring));
  }
  if (!o.keep) {
    fr->reset();
    std::filesystem::remove_all(files.path, ec);
  }
  return r;
}

void Print(const std::vector<SizeResult>& results, double gib) {
  Table t({"segment", "QD", "in flight", "extent GiB/s", "files GiB/s", "fio GiB/s", "extent/fio",
           "ext ring GiB/s", "ring/fio", "uring GiB/s", "extent/uring", "extent/files",
           "sys s/GiB extent", "sys s/GiB files", "files/extent sys"});
  for (const auto& r : results) {
    for (size_t i = 0; i < r.depths.size(); ++i) {
      const Measure& e = r.extent[i];
      const Measure& f = r.files[i];
      const Measure& ring = r.extent_ring[i];
      double fio_gib = double(r.fio[i].gibps);
      double uring_gib = r.uring[i];
      t.Add({std::to_string(r.kib) + " KiB", std::to_string(r.depths[i]), Fixed(e.in_flight, 1),
             Fixed(e.gibps, 2), Fixed(f.gibps, 2), Fixed(fio_gib, 2), Fixed(e.gibps / fio_gib, 2),
             Fixed(ring.gibps, 2), Fixed(ring.gibps / fio_gib, 2),
             uring_gib > 0 ? Fixed(uring_gib, 2) : "-",
             uring_gib > 0 ? Fixed(e.gibps / uring_gib, 2) : "-", Fixed(e.gibps / f.gibps, 1),
             CpuCell(e.sys_per_gib, gib), CpuCell(f.sys_per_gib, gib),
             std::string(e.sys_per_gib < 0.004 / gib ? ">" : "") +
                 Fixed(f.sys_per_gib / std::max(e.sys_per_gib, 0.004 / gib), 1)});
    }
  }
  std::cout << t.Render();
  if (!results.empty() && !results[0].fio.empty()) {
    const FioResult& fio = results[0].fio[0];
    std::cout << "fio buffers: " << fio.memory << "\n";
    if (!fio.huge_pages) {
      std::cout << "  (on VMs fio read 1.5-2x slower into 4 KiB pages than into huge pages, which "
                   "flatters extent/fio: reserve some, e.g. echo 64 > /proc/sys/vm/nr_hugepages "
                   "and mount -t hugetlbfs nodev /dev/hugepages)\n";
    }
  }
  if (results.empty() || results[0].spdk.empty()) return;
  // The SPDK device polls: its CPU is user time of the polling worker.
  Table s({"segment", "QD", "in flight", "spdk GiB/s", "perf GiB/s", "spdk/perf", "extent GiB/s",
           "spdk/extent", "usr s/GiB spdk", "sys s/GiB spdk", "usr+sys s/GiB perf",
           "usr+sys s/GiB extent"});
  for (const auto& r : results) {
    for (size_t i = 0; i < r.depths.size(); ++i) {
      const Measure& sp = r.spdk[i];
      const Measure& e = r.extent[i];
      const SpdkPerfResult& p = r.perf[i];
      s.Add({std::to_string(r.kib) + " KiB", std::to_string(r.depths[i]), Fixed(sp.in_flight, 1),
             Fixed(sp.gibps, 2), IfRun(p, p.gibps, 2), IfRun(p, sp.gibps / p.gibps, 2),
             Fixed(e.gibps, 2),
             Fixed(sp.gibps / e.gibps, 2), CpuCell(sp.user_per_gib, gib),
             CpuCell(sp.sys_per_gib, gib),
             IfRun(p, (p.user_seconds + p.system_seconds) / p.gib, 4),
             CpuCell(e.user_per_gib + e.sys_per_gib, gib)});
    }
  }
  const SizeResult& last = results.back();
  std::cout << "\nSPDK device (same extent format, user-space NVMe, polled completions) against "
               "spdk_nvme_perf (random reads, same namespace, block size and depth, run "
               "alternately; its CPU includes its start-up):\n"
            << s.Render() << "last SPDK run: " << last.spdk_describe << "\n";
  if (!last.perf_note.empty()) std::cout << "spdk_nvme_perf not run: " << last.perf_note << "\n";
  if (last.perf_note.empty() && !last.perf.empty()) {
    std::cout << "spdk_nvme_perf: " << last.perf.back().command << "\n";
  }
}

json ToJson(const std::vector<SizeResult>& results) {
  json rows = json::array();
  for (const auto& r : results) {
    for (size_t i = 0; i < r.depths.size(); ++i) {
      auto m = [](const Measure& x) {
        return json{{"gibps", x.gibps}, {"user_s_per_gib", x.user_per_gib},
                    {"sys_s_per_gib", x.sys_per_gib}, {"mean_in_flight", x.in_flight},
                    {"bounced_reads", x.bounced}};
      };
      const FioResult& f = r.fio[i];
      double gib = f.gibps * f.runtime_seconds;
      rows.push_back({{"segment_kib", r.kib}, {"queue_depth", r.depths[i]},
                      {"extent", m(r.extent[i])}, {"extent_ring", m(r.extent_ring[i])},
                      {"files", m(r.files[i])},
                      {"fio", {{"gibps", f.gibps}, {"user_s_per_gib", gib ? f.user_seconds / gib : 0},
                               {"sys_s_per_gib", gib ? f.system_seconds / gib : 0},
                               {"memory", f.memory}, {"command", f.command}}},
                      {"uring_same_destination", {{"gibps", r.uring[i]}}}});
      if (!r.spdk.empty()) {
        rows.back()["spdk"] = m(r.spdk[i]);
        rows.back()["spdk"]["describe"] = r.spdk_describe;
        const SpdkPerfResult& p = r.perf[i];
        rows.back()["spdk_nvme_perf"] =
            p.gibps > 0 ? json{{"gibps", p.gibps}, {"user_s", p.user_seconds},
                               {"sys_s", p.system_seconds}, {"wall_s", p.runtime_seconds},
                               {"command", p.command}}
                        : json{{"not_run", r.perf_note}};
      }
    }
  }
  return rows;
}

}  // namespace

int RunDeviceBench(const DeviceBenchOptions& o) {
  std::error_code ec;
  std::filesystem::create_directories(o.dir, ec);
  std::printf("kvpool bench device: %llu MiB per segment size, random order, in %s\n",
              static_cast<unsigned long long>(o.mib), o.dir.c_str());
  std::printf("machine: %s; %s\n", MachineDescription().c_str(), NowIso8601().c_str());
  std::vector<SizeResult> results;
  std::string cold;
  for (uint32_t kib : o.sizes_kib) {
    auto r = BenchOneSize(o, kib, &cold);
    if (!r.ok()) return std::cerr << "kvpool bench device: " << r.status().ToString() << "\n", 1;
    results.push_back(std::move(r).value());
  }
  std::printf("payloads: %s\n", o.zero_copy ? "zero-copy where aligned (direct I/O into the "
                                                "reader's memory)"
                                              : "copied through bounce buffers (--bounce)");
  std::printf("cold reads: %s; medians of %d runs, readers in rotating order; CPU = system "
              "seconds of the whole process per GiB (fio: its own); in flight = the extent "
              "device's mean transfers in flight over the run (fio keeps QD); uring = plain "
              "io_uring O_DIRECT "
              "reads of the same file, each landing in its own place of a destination as large "
              "as the extent's (fio reuses QD buffers); ext ring = the extent device reading "
              "into 2 x QD reused buffers, as fio reads into QD\n",
              cold.c_str(), o.repeats);
  Print(results, double(o.mib) / 1024);
  if (!o.keep) std::filesystem::remove(o.dir + "/bench.extent", ec);
  if (!o.json.empty()) {
    json j{{"command", "bench device"}, {"machine", MachineDescription()},
           {"date", NowIso8601()}, {"cold", cold}, {"rows", ToJson(results)}};
    std::ofstream(o.json) << j.dump(2) << "\n";
    std::printf("results: %s\n", o.json.c_str());
  }
  return 0;
}

}  // namespace kvpool::cli
