// Read-bandwidth probe of each device whose bandwidth is not configured.
//
// Devices that share a bottleneck (one NUMA node's memory, one disk) form a
// contention group (ContentionGroup). Every device is first probed alone: a
// probe writes up to PoolOptions::probe_mib of segments to free slots, makes
// the device cold (DropCaches), times reading them back through the
// device's own workers, then frees the slots. A memory device's reading,
// solo and joint, is the fastest of five passes (a pass takes milliseconds,
// and a disturbed one would otherwise stay in the cache below); a disk's is
// one cold pass. A device too full for that
// reads segments already on it instead (found by recovery), and one with
// neither gets a conservative default (log::Warn); a probe never fails Open.
// Then every group of more than one device is read all at once, and each
// member's placement bandwidth is its solo bandwidth scaled by
// joint / sum of solos when the group delivers less than that sum
// (ScaleForContention).
//
// Results are cached in <state_dir>/probe-cache.json, keyed by the device's
// identity, so later opens skip the probe. An entry is
//   {"solo": GiB/s, "placement": GiB/s, "group": "...", "peers": [keys]}
// and is used when its group still has the same members; an entry of the
// older format (a plain number) is a solo bandwidth, used as is for a device
// alone in its group.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/device_runner.h"

namespace kvpool {

struct PoolOptions;
class Glt;

// Bandwidth given to a device that could not be probed (GiB/s).
inline constexpr double kDefaultProbeGibps = 0.25;

// Sets every runner's contention group and bandwidths (placement and solo).
// Runners with DeviceOptions::bandwidth_gibps > 0 take it as is. `recovered`,
// when given, is the table rebuilt from the persistent devices: its segments
// are what a device without room for probe data reads instead. Errors only
// for what is not the probe's (none today): a failed probe falls back to
// kDefaultProbeGibps with a warning.
// `use_cache` false measures every device again and rewrites the cache.
Status ProbeBandwidths(std::vector<std::unique_ptr<DeviceRunner>>& runners,
                       const PoolOptions& options, const Glt* recovered = nullptr,
                       bool use_cache = true);

// The bottleneck a device shares with others: "mem:node<k>" for a DRAM region
// bound to NUMA node k, "mem" for an unbound one, "disk:<major>:<minor>" for
// an extent or file device (the device holding its path, or the nearest
// existing parent directory; a block device's own number), otherwise the
// device's name.
std::string ContentionGroup(const DeviceOptions& device);

// Placement bandwidths of the members of one group: `solos` scaled by
// joint / sum(solos) when `joint` is below that sum (and > 0), else `solos`.
std::vector<double> ScaleForContention(const std::vector<double>& solos, double joint);

struct ProbeResult {
  double read_gibps = 0;
  double write_gibps = 0;  // 0 when nothing was written (existing segments, default)
};

// How a device's bandwidth was obtained.
enum class ProbeSource : uint8_t {
  kConfigured = 0,  // DeviceOptions::bandwidth_gibps
  kCached,          // probe-cache.json
  kFreeSlots,       // wrote then read probe data in free slots
  kExisting,        // read segments already on the device
  kDefault,         // could not probe: kDefaultProbeGibps
};
const char* ProbeSourceName(ProbeSource source);  // "configured", "cached", ...

struct DeviceProbe {
  std::string group;
  ProbeResult solo;             // this device alone
  double placement_gibps = 0;   // solo.read_gibps scaled for its group
  double group_joint_gibps = 0; // the group's aggregate read, all at once; 0 when alone
  // With MeasureSettings::all_at_once: this device's read throughput (bytes
  // over its busy time) while every measured device reads at once, as in a
  // pool retrieval: the live figure a running pool would observe. 0 otherwise.
  double all_at_once_gibps = 0;
  ProbeSource source = ProbeSource::kDefault;
  std::string note;             // why the default was used, when it was
};

struct MeasureSettings {
  uint32_t segment_payload = 0;
  uint64_t probe_bytes = 64ull << 20;  // per device
  // Share of a device's free slots a probe may write: a pool keeps room for
  // data (0.5); a device made only for probing may be filled (1.0).
  double max_free_fraction = 0.5;
  const Glt* recovered = nullptr;  // see ProbeBandwidths
  // Also read every measured device at once (DeviceProbe::all_at_once_gibps).
  // Default: false (Pool::Open does not need it).
  bool all_at_once = false;
};

// Measures every runner now (no cache, configured bandwidths ignored): solo,
// then jointly per contention group. Sets nothing on the runners. Result i
// is runners[i]'s. Never fails: a device that cannot be probed gets
// kDefaultProbeGibps and a note.
std::vector<DeviceProbe> MeasureDevices(std::span<DeviceRunner* const> runners,
                                        const MeasureSettings& settings);

// Measures one device alone now (no cache): writes then cold reads of
// `probe_bytes` worth of segments in free slots through the device's workers.
// NoSpace when the device has too few free slots.
Result<ProbeResult> MeasureBandwidth(DeviceRunner& runner, uint32_t segment_payload,
                                     uint64_t probe_bytes);

}  // namespace kvpool
