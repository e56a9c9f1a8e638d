#include "core/bandwidth_probe.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include <kvpool/options.h>

#include "core/glt.h"
#include "core/io_waiter.h"
#include "util/aligned_buffer.h"
#include "util/clock.h"
#include "util/log.h"

namespace kvpool {
namespace {

// Fewer probe segments than this in free slots: read existing data instead.
constexpr uint32_t kMinProbeSegments = 4;

// Timed read passes of a probe; the fastest counts. A memory device's pass
// over probe_mib takes milliseconds, so one preempted worker or a neighbour's
// burst halves a single reading, and a cached probe keeps such a reading
// for every later open: the best of several passes is the device's, since
// interference only ever slows one down. A disk's pass is one cold read
// (caches dropped before each), left at one so that the probe neither
// lengthens Open nor reads back what a host cache kept from the pass before.
int ProbePasses(bool memory) { return memory ? 5 : 1; }

std::string CacheKey(const DeviceOptions& d, uint32_t payload) {
  return std::string(DeviceKindName(d.kind)) + "|" + d.name + "|" + d.path + "|" +
         std::to_string(d.capacity_bytes) + "|" + std::to_string(d.throttle_gibps) + "|" +
         std::to_string(d.io_threads) + "|" + std::to_string(d.queue_depth) + "|" +
         std::to_string(payload);
}

nlohmann::json ReadCache(const std::string& path) {
  std::ifstream in(path);
  if (!in) return nlohmann::json::object();
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  return j.is_object() ? j : nlohmann::json::object();
}

void WriteCache(const std::string& path, const nlohmann::json& cache) {
  {
    std::ofstream out(path + ".tmp");
    out << cache.dump(2) << "\n";
  }
  std::error_code ec;
  std::filesystem::rename(path + ".tmp", path, ec);
  if (ec) log::Warn("probe cache '" + path + "' not written: " + ec.message());
}

double Gibps(double bytes, double seconds) {
  return bytes / double(1ull << 30) / std::max(seconds, 1e-6);
}

// The fastest of `passes` timed reads of `bytes`: each pass calls `drop`
// (untimed: make the devices cold), then times `read`. The first failed
// read is returned as is.
template <class DropFn, class ReadFn>
Result<double> FastestPass(int passes, double bytes, DropFn drop, ReadFn read) {
  double best = 0;
  for (int pass = 0; pass < passes; ++pass) {
    drop();
    Clock::time_point start = Clock::now();
    KVP_RETURN_IF_ERROR(read());
    best = std::max(best, Gibps(bytes, SecondsSince(start)));
  }
  return best;
}

// Up to `max` ready segments of device `device` listed in `glt`, as read ops
// (buffers not set).
std::vector<SegmentIo> ExistingReads(const Glt& glt, uint16_t device, uint32_t payload,
                                     size_t max) {
  std::vector<SegmentIo> out;
  glt.ForEach([&](const ChunkRef& r) {
    if (out.size() >= max || r->state.load(std::memory_order_acquire) != ChunkState::kReady) {
      return;
    }
    for (uint32_t l = 0; l < r->layers && out.size() < max; ++l) {
      const SegmentLoc& loc = r->segment(l);
      if (loc.device != device) continue;
      SegmentIo op;
      op.kind = IoKind::kRead;
      op.slot = loc.slot;
      op.length = payload;
      op.checksum = loc.checksum;
      op.tag.chunk = r->key;
      op.tag.parent = r->parent;
      op.tag.layer = l;
      out.push_back(op);
    }
  });
  return out;
}

// What one device is probed with: read ops over slots written for the probe
// (freed at destruction) or over segments already on the device.
class ProbeData {
 public:
  explicit ProbeData(DeviceRunner& runner) : runner_(runner) {}
  ~ProbeData() {
    for (uint32_t slot : owned_) {
      runner_.device().ReleaseSlot(slot);
      runner_.slots().Free(slot);
    }
  }
  ProbeData(const ProbeData&) = delete;
  ProbeData& operator=(const ProbeData&) = delete;

  // Writes probe data to free slots (timing the write into *write_gibps), or
  // picks existing segments. NoSpace when neither is possible.
  Status Prepare(const MeasureSettings& s, double* write_gibps, ProbeSource* source) {
    const uint32_t payload = s.segment_payload;
    const uint32_t want = static_cast<uint32_t>(
        std::clamp<uint64_t>(s.probe_bytes / std::max<uint32_t>(payload, 1), kMinProbeSegments,
                             UINT32_MAX));
    const uint32_t fit =
        static_cast<uint32_t>(runner_.slots().free_slots() * std::clamp(s.max_free_fraction, 0.0, 1.0));
    const uint32_t take = std::min(want, fit);
    if (take < kMinProbeSegments && s.recovered != nullptr) {
      ops_ = ExistingReads(*s.recovered, runner_.id(), payload, want);
      if (!ops_.empty()) {
        AttachBuffers(payload);
        *source = ProbeSource::kExisting;
        return Status::OK();
      }
    }
    if (take == 0) {
      return Status::NoSpace("device '" + runner_.device().name() +
                             "': no free slot to write probe data and no segment to read");
    }
    *source = ProbeSource::kFreeSlots;
    return WriteFreeSlots(take, payload, write_gibps);
  }

  std::vector<SegmentIo>& ops() { return ops_; }
  double bytes() const {
    double b = 0;
    for (const SegmentIo& op : ops_) b += op.length;
    return b;
  }

  // Cold reads of every op through the device's workers; GiB/s. A memory
  // device has no cache to drop: one untimed pass first, so that the timed
  // ones measure copies, not first touches of the workers' buffers; then
  // the best of ProbePasses() timed passes.
  Result<double> TimeReads() {
    IoWaiter waiter;
    const bool memory = !runner_.device().persistent();
    if (memory) (void)waiter.Run(runner_, ops_);
    Result<double> best = FastestPass(
        ProbePasses(memory), bytes(), [&] { runner_.device().DropCaches(); },
        [&] { return waiter.Run(runner_, ops_); });
    if (!best.ok()) {
      return best.status().WithContext("bandwidth probe of device '" + runner_.device().name() + "'");
    }
    return best;
  }

 private:
  void AttachBuffers(uint32_t payload) {
    const size_t stride = RoundUp(payload, 4096);
    data_ = AlignedBuffer(stride * ops_.size());
    for (size_t i = 0; i < ops_.size(); ++i) ops_[i].buffer = data_.data() + i * stride;
  }

  Status WriteFreeSlots(uint32_t take, uint32_t payload, double* write_gibps) {
    runner_.slots().Allocate(take, &owned_);
    ops_.resize(owned_.size());
    for (uint32_t i = 0; i < owned_.size(); ++i) {
      ops_[i].kind = IoKind::kWrite;
      ops_[i].slot = owned_[i];
      ops_[i].length = payload;
      ops_[i].tag.layer = i;  // zero chunk key (recovery ignores it); distinct file offsets
    }
    AttachBuffers(payload);
    for (size_t i = 0; i < data_.size(); i += 4096) data_.data()[i] = std::byte(i >> 12);
    IoWaiter waiter;
    Clock::time_point start = Clock::now();
    Status s = waiter.Run(runner_, ops_);
    *write_gibps = Gibps(bytes(), SecondsSince(start));
    for (SegmentIo& op : ops_) op.kind = IoKind::kRead;  // checksums kept from the write
    return s.WithContext("bandwidth probe of device '" + runner_.device().name() + "'");
  }

  DeviceRunner& runner_;
  std::vector<uint32_t> owned_;
  std::vector<SegmentIo> ops_;
  AlignedBuffer data_;
};

void UseDefault(DeviceProbe* p, const Status& why) {
  p->source = ProbeSource::kDefault;
  p->solo = ProbeResult{kDefaultProbeGibps, 0};
  p->placement_gibps = kDefaultProbeGibps;
  p->note = why.ToString();
}

std::string Fixed(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f", v);
  return buf;
}

// Sets a measured (or defaulted) probe on its runner and logs it.
void Apply(DeviceRunner& r, const DeviceProbe& p) {
  const std::string name = "device '" + r.device().name() + "'";
  r.set_solo_bandwidth(p.solo.read_gibps);
  r.set_bandwidth(p.placement_gibps, p.source != ProbeSource::kDefault);
  if (p.source == ProbeSource::kDefault) {
    log::Warn(name + " could not be probed (" + p.note + "); using a conservative " +
              Fixed(kDefaultProbeGibps) + " GiB/s until a later open measures it");
    return;
  }
  std::string m = name + " probed at " + Fixed(p.solo.read_gibps) + " GiB/s alone (" +
                  ProbeSourceName(p.source) + ")";
  if (p.group_joint_gibps > 0) {
    m += ", " + Fixed(p.placement_gibps) + " GiB/s for placement (group " + p.group + ": " +
         Fixed(p.group_joint_gibps) + " GiB/s jointly)";
  }
  log::Info(m);
}

}  // namespace

const char* ProbeSourceName(ProbeSource source) {
  switch (source) {
    case ProbeSource::kConfigured: return "configured";
    case ProbeSource::kCached: return "cached";
    case ProbeSource::kFreeSlots: return "probe data";
    case ProbeSource::kExisting: return "existing segments";
    case ProbeSource::kDefault: return "default";
  }
  return "?";
}

std::string ContentionGroup(const DeviceOptions& d) {
  if (d.kind == DeviceKind::kDram) {
    return d.numa_node >= 0 ? "mem:node" + std::to_string(d.numa_node) : "mem";
  }
  if ((d.kind == DeviceKind::kExtent || d.kind == DeviceKind::kFilePerChunk) && !d.path.empty()) {
    std::filesystem::path p = std::filesystem::absolute(d.path);
    while (true) {
      struct stat st {};
      if (::stat(p.c_str(), &st) == 0) {
        dev_t dev = S_ISBLK(st.st_mode) ? st.st_rdev : st.st_dev;
        return "disk:" + std::to_string(major(dev)) + ":" + std::to_string(minor(dev));
      }
      if (!p.has_relative_path()) break;  // the root itself failed
      p = p.parent_path();
    }
  }
  return d.name;
}

std::vector<double> ScaleForContention(const std::vector<double>& solos, double joint) {
  double sum = 0;
  for (double s : solos) sum += s;
  if (!(joint > 0) || !(joint < sum)) return solos;
  std::vector<double> out;
  for (double s : solos) out.push_back(s * (joint / sum));
  return out;
}

// Every device with probe data read at once: per device, bytes over busy time.
void MeasureAllAtOnce(std::span<DeviceRunner* const> runners,
                      std::vector<std::unique_ptr<ProbeData>>& data,
                      std::vector<DeviceProbe>* out);

std::vector<DeviceProbe> MeasureDevices(std::span<DeviceRunner* const> runners,
                                        const MeasureSettings& settings) {
  std::vector<DeviceProbe> out(runners.size());
  std::vector<std::unique_ptr<ProbeData>> data(runners.size());
  std::map<std::string, std::vector<size_t>> groups;
  for (size_t i = 0; i < runners.size(); ++i) {
    DeviceProbe& p = out[i];
    p.group = ContentionGroup(runners[i]->device().options());
    data[i] = std::make_unique<ProbeData>(*runners[i]);
    Status s = data[i]->Prepare(settings, &p.solo.write_gibps, &p.source);
    Result<double> read = s.ok() ? data[i]->TimeReads() : Result<double>(s);
    if (!read.ok()) {
      UseDefault(&p, read.status());
      data[i].reset();
      continue;
    }
    p.solo.read_gibps = *read;
    p.placement_gibps = *read;
    groups[p.group].push_back(i);
  }
  // Each group of two or more measured devices: all members at once.
  for (const auto& [group, members] : groups) {
    if (members.size() < 2) continue;
    std::vector<DeviceRunner*> rs;
    std::vector<std::span<SegmentIo>> ops;
    double bytes = 0;
    std::vector<double> solos;
    bool memory = true;  // every member: the group's passes are a memory probe's
    for (size_t i : members) {
      rs.push_back(runners[i]);
      ops.push_back(data[i]->ops());
      bytes += data[i]->bytes();
      solos.push_back(out[i].solo.read_gibps);
      memory = memory && !runners[i]->device().persistent();
    }
    IoWaiter waiter;
    Result<double> joint = FastestPass(
        ProbePasses(memory), bytes, [&] { for (DeviceRunner* r : rs) r->device().DropCaches(); },
        [&] { return waiter.RunAll(rs, ops); });
    if (!joint.ok()) {
      log::Warn("joint bandwidth probe of group " + group + " failed (" +
                joint.status().ToString() + "); its devices keep their solo bandwidths");
      continue;
    }
    std::vector<double> scaled = ScaleForContention(solos, *joint);
    for (size_t k = 0; k < members.size(); ++k) {
      out[members[k]].placement_gibps = scaled[k];
      out[members[k]].group_joint_gibps = *joint;
    }
  }
  if (settings.all_at_once) MeasureAllAtOnce(runners, data, &out);
  return out;  // `data` frees every probe slot here
}

void MeasureAllAtOnce(std::span<DeviceRunner* const> runners,
                      std::vector<std::unique_ptr<ProbeData>>& data,
                      std::vector<DeviceProbe>* out) {
  std::vector<DeviceRunner*> rs;
  std::vector<std::span<SegmentIo>> ops;
  std::vector<size_t> index;
  std::vector<double> busy_before;
  std::vector<uint64_t> bytes_before;
  for (size_t i = 0; i < runners.size(); ++i) {
    if (!data[i]) continue;
    runners[i]->device().DropCaches();
    rs.push_back(runners[i]);
    ops.push_back(data[i]->ops());
    index.push_back(i);
    busy_before.push_back(runners[i]->busy_seconds());
    bytes_before.push_back(runners[i]->counters().bytes_read.load());
  }
  IoWaiter waiter;
  Status s = waiter.RunAll(rs, ops);
  if (!s.ok()) {
    log::Warn("all-devices bandwidth probe failed: " + s.ToString());
    return;
  }
  for (size_t k = 0; k < rs.size(); ++k) {
    double busy = rs[k]->busy_seconds() - busy_before[k];
    double bytes = double(rs[k]->counters().bytes_read.load() - bytes_before[k]);
    (*out)[index[k]].all_at_once_gibps = busy > 0 ? Gibps(bytes, busy) : 0;
  }
}

Result<ProbeResult> MeasureBandwidth(DeviceRunner& runner, uint32_t payload, uint64_t bytes) {
  MeasureSettings settings;
  settings.segment_payload = payload;
  settings.probe_bytes = bytes;
  ProbeData data(runner);
  ProbeResult result;
  ProbeSource source;
  KVP_RETURN_IF_ERROR(data.Prepare(settings, &result.write_gibps, &source));
  KVP_ASSIGN_OR_RETURN(result.read_gibps, data.TimeReads());
  return result;
}

Status ProbeBandwidths(std::vector<std::unique_ptr<DeviceRunner>>& runners,
                       const PoolOptions& options, const Glt* recovered, bool use_cache) {
  const uint32_t payload = static_cast<uint32_t>(options.shape.SegmentPayloadBytes());
  std::string cache_path;
  if (!options.state_dir.empty()) cache_path = options.state_dir + "/probe-cache.json";
  nlohmann::json cache = cache_path.empty() || !use_cache ? nlohmann::json::object() : ReadCache(cache_path);

  // Groups of the devices to probe (configured ones take their value).
  std::map<std::string, std::vector<size_t>> groups;
  std::vector<std::string> keys(runners.size());
  for (size_t i = 0; i < runners.size(); ++i) {
    const DeviceOptions& d = runners[i]->device().options();
    runners[i]->set_contention_group(ContentionGroup(d));
    if (d.bandwidth_gibps > 0) {
      runners[i]->set_bandwidth(d.bandwidth_gibps, false);
      continue;
    }
    keys[i] = CacheKey(d, payload);
    groups[runners[i]->contention_group()].push_back(i);
  }
  auto peers_of = [&](const std::vector<size_t>& members, size_t self) {
    std::vector<std::string> peers;
    for (size_t m : members) {
      if (m != self) peers.push_back(keys[m]);
    }
    std::sort(peers.begin(), peers.end());
    return peers;
  };

  // A group is served from the cache when every member has an entry made
  // with the same peers (or, alone in its group, any entry, old ones included).
  std::vector<DeviceRunner*> to_measure;
  std::vector<size_t> measure_index;  // into runners, per to_measure entry
  for (const auto& [group, members] : groups) {
    bool cached = true;
    for (size_t i : members) {
      const nlohmann::json* e = cache.contains(keys[i]) ? &cache[keys[i]] : nullptr;
      bool alone = members.size() == 1;
      if (e != nullptr && e->is_number() && e->get<double>() > 0 && alone) continue;
      if (e != nullptr && e->is_object() && e->value("solo", 0.0) > 0 &&
          e->value("placement", 0.0) > 0 && e->contains("peers") &&
          (*e)["peers"] == nlohmann::json(peers_of(members, i))) {
        continue;
      }
      cached = false;
    }
    for (size_t i : members) {
      if (!cached) {
        to_measure.push_back(runners[i].get());
        measure_index.push_back(i);
        continue;
      }
      const nlohmann::json& e = cache[keys[i]];
      double solo = e.is_number() ? e.get<double>() : e["solo"].get<double>();
      runners[i]->set_solo_bandwidth(solo);
      runners[i]->set_bandwidth(e.is_number() ? solo : e["placement"].get<double>(), true);
    }
  }
  if (to_measure.empty()) return Status::OK();

  MeasureSettings settings;
  settings.segment_payload = payload;
  settings.probe_bytes = uint64_t{options.probe_mib} << 20;
  settings.recovered = recovered;
  std::vector<DeviceProbe> probes = MeasureDevices(to_measure, settings);
  bool dirty = false;
  for (size_t k = 0; k < to_measure.size(); ++k) {
    DeviceRunner& r = *to_measure[k];
    const DeviceProbe& p = probes[k];
    Apply(r, p);
    if (p.source == ProbeSource::kDefault) continue;  // measured at a later open
    const size_t i = measure_index[k];
    cache[keys[i]] = {{"solo", p.solo.read_gibps},
                      {"placement", p.placement_gibps},
                      {"group", p.group},
                      {"peers", peers_of(groups[p.group], i)}};
    dirty = true;
  }
  if (dirty && !cache_path.empty()) WriteCache(cache_path, cache);
  return Status::OK();
}

}  // namespace kvpool
