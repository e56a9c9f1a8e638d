// Read plans over copies: which copy of each segment a retrieval reads.
//
// A segment may have a home copy (persistent device), a DRAM copy and a
// remote copy (a remote-only chunk's segments are its home copy). The
// plan picks, layer by layer, the copy whose device would finish soonest
// counting what it already has to do: (queued bytes + bytes planned so far +
// this segment) / bandwidth. Segments with a single usable copy are placed
// first in each layer, then the rest greedily. Planning layer by layer keeps
// every prefix of the plan balanced, so the devices finish each layer, and
// the whole request, at about the same time: a prefix entirely in DRAM
// still gives a home device the share it can finish in time.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace kvpool {

inline constexpr uint16_t kNoDevice = 0xffff;

// The copies of one segment that may be read: device indices, kNoDevice
// for none.
struct SegmentCopies {
  uint16_t home = kNoDevice;
  uint16_t copy = kNoDevice;
  uint16_t remote = kNoDevice;
};

struct DeviceLoad {
  double gibps = 0;            // bandwidth the plan assumes (> 0 to be used)
  uint64_t queued_bytes = 0;   // work already queued on the device
};

// Returns, per segment, the device to read it from (one of its copies), or
// kNoDevice when it has no copy on a device with bandwidth > 0.
// `segments` is layer-major with `per_layer` segments per layer; every
// segment is `bytes` long. `devices` is indexed by device id.
std::vector<uint16_t> PlanReads(std::span<const SegmentCopies> segments, size_t per_layer,
                                std::span<const DeviceLoad> devices, uint64_t bytes);

}  // namespace kvpool
