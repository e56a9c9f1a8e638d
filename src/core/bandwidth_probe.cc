#include "core/bandwidth_probe.h"

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>

#include <kvpool/options.h>

#include "core/io_waiter.h"
#include "util/aligned_buffer.h"
#include "util/clock.h"
#include "util/log.h"

namespace kvpool {
namespace {

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

}  // namespace

Result<ProbeResult> MeasureBandwidth(DeviceRunner& runner, uint32_t payload, uint64_t bytes) {
  uint32_t want = static_cast<uint32_t>(std::max<uint64_t>(4, bytes / payload));
  want = std::min(want, runner.slots().free_slots() / 2);
  if (want == 0) return Status::NoSpace("device '" + runner.device().name() + "' too small to probe");
  std::vector<uint32_t> slots;
  runner.slots().Allocate(want, &slots);
  size_t stride = RoundUp(payload, 4096);
  AlignedBuffer data(stride * want);
  for (size_t i = 0; i < data.size(); i += 4096) data.data()[i] = std::byte(i >> 12);
  std::vector<SegmentIo> ops(want);
  IoWaiter waiter;
  for (uint32_t i = 0; i < want; ++i) {
    ops[i] = SegmentIo{IoKind::kWrite, slots[i], payload, data.data() + i * stride};
    ops[i].tag.layer = i;  // zero chunk key (recovery ignores it); distinct file offsets
  }
  const double gib = double(want) * payload / double(1ull << 30);
  ProbeResult result;
  Clock::time_point start = Clock::now();
  Status s = waiter.Run(runner, ops);
  result.write_gibps = gib / std::max(SecondsSince(start), 1e-6);
  if (s.ok()) {
    runner.device().DropCaches();
    for (SegmentIo& op : ops) op.kind = IoKind::kRead;
    start = Clock::now();
    s = waiter.Run(runner, ops);
    result.read_gibps = gib / std::max(SecondsSince(start), 1e-6);
  }
  for (uint32_t slot : slots) {
    runner.device().ReleaseSlot(slot);
    runner.slots().Free(slot);
  }
  if (!s.ok()) return s.WithContext("bandwidth probe");
  return result;
}

Status ProbeBandwidths(std::vector<std::unique_ptr<DeviceRunner>>& runners,
                       const PoolOptions& options) {
  const uint32_t payload = static_cast<uint32_t>(options.shape.SegmentPayloadBytes());
  std::string cache_path;
  if (!options.state_dir.empty()) cache_path = options.state_dir + "/probe-cache.json";
  nlohmann::json cache = cache_path.empty() ? nlohmann::json::object() : ReadCache(cache_path);
  bool dirty = false;
  for (auto& r : runners) {
    const DeviceOptions& d = r->device().options();
    if (d.bandwidth_gibps > 0) {
      r->set_bandwidth(d.bandwidth_gibps, false);
      continue;
    }
    std::string key = CacheKey(d, payload);
    if (cache.contains(key) && cache[key].is_number() && cache[key].get<double>() > 0) {
      r->set_bandwidth(cache[key].get<double>(), true);
      continue;
    }
    auto probe = MeasureBandwidth(*r, payload, uint64_t{options.probe_mib} << 20);
    if (!probe.ok()) return probe.status().WithContext("device '" + d.name + "'");
    r->set_bandwidth(probe->read_gibps, true);
    log::Info("device '" + d.name + "' probed at " + std::to_string(probe->read_gibps) +
              " GiB/s");
    cache[key] = probe->read_gibps;
    dirty = true;
  }
  if (dirty && !cache_path.empty()) {
    std::ofstream out(cache_path + ".tmp");
    out << cache.dump(2) << "\n";
    out.close();
    std::error_code ec;
    std::filesystem::rename(cache_path + ".tmp", cache_path, ec);
  }
  return Status::OK();
}

}  // namespace kvpool
