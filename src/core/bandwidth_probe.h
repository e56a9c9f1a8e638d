// Read-bandwidth probe of each device whose bandwidth is not configured.
// Writes PoolOptions::probe_mib of segments to free slots, makes the device
// cold (DropCaches), times reading them back through the device's own
// workers, then frees the slots. Results are cached in
// <state_dir>/probe-cache.json, keyed by the device's identity, so later
// opens skip the probe.
#pragma once

#include <memory>
#include <vector>

#include "core/device_runner.h"

namespace kvpool {

struct PoolOptions;

Status ProbeBandwidths(std::vector<std::unique_ptr<DeviceRunner>>& runners,
                       const PoolOptions& options);

struct ProbeResult {
  double read_gibps = 0;
  double write_gibps = 0;
};

// Measures one device now (no cache): writes then cold reads of
// `probe_bytes` worth of segments through the device's workers.
Result<ProbeResult> MeasureBandwidth(DeviceRunner& runner, uint32_t segment_payload,
                                     uint64_t probe_bytes);

}  // namespace kvpool
