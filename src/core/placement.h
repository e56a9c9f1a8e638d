// Bandwidth-aware placement: how many of a batch's K segments each device
// receives, and in which order they are interleaved.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace kvpool {

// Splits `k` segments over devices in proportion to `bandwidth` (p_i = b_i /
// sum b_j): device i gets floor(p_i * k) plus a largest-remainder share.
// A device gets at most room[i]; devices that fill up drop out and the
// weights renormalize over the rest. Devices with bandwidth 0 or room 0 get
// nothing. The counts sum to min(k, total room of eligible devices).
std::vector<uint64_t> PlaceCounts(std::span<const double> bandwidth,
                                  std::span<const uint64_t> room, uint64_t k);

// A sequence of device indices holding index i exactly counts[i] times,
// spread evenly (smooth weighted round robin), so that any contiguous run of
// segments (one layer of a batch laid out layer-major) is itself split in
// about the same proportions.
std::vector<uint16_t> InterleaveCounts(std::span<const uint64_t> counts);

}  // namespace kvpool
