#include "core/placement.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace kvpool {
namespace {

// Largest-remainder split of `k` over `active` devices; REQUIRES every exact
// share to be below its room (checked by the caller).
void SplitLargestRemainder(std::span<const double> bw, const std::vector<size_t>& active,
                           double total_bw, uint64_t k, std::vector<uint64_t>* counts) {
  std::vector<std::pair<double, size_t>> remainders;
  uint64_t given = 0;
  for (size_t i : active) {
    double exact = static_cast<double>(k) * bw[i] / total_bw;
    uint64_t base = static_cast<uint64_t>(std::floor(exact));
    (*counts)[i] += base;
    given += base;
    remainders.push_back({exact - static_cast<double>(base), i});
  }
  std::stable_sort(remainders.begin(), remainders.end(),
                   [&](const auto& a, const auto& b) {
                     if (a.first != b.first) return a.first > b.first;
                     return bw[a.second] > bw[b.second];
                   });
  for (uint64_t j = 0; given < k && j < remainders.size(); ++j, ++given) {
    ++(*counts)[remainders[j].second];
  }
}

}  // namespace

std::vector<uint64_t> PlaceCounts(std::span<const double> bandwidth,
                                  std::span<const uint64_t> room, uint64_t k) {
  std::vector<uint64_t> counts(bandwidth.size(), 0);
  std::vector<uint64_t> left(room.begin(), room.end());
  std::vector<size_t> active;
  for (size_t i = 0; i < bandwidth.size(); ++i) {
    if (bandwidth[i] > 0 && room[i] > 0) active.push_back(i);
  }
  uint64_t remaining = k;
  while (remaining > 0 && !active.empty()) {
    double total = 0;
    for (size_t i : active) total += bandwidth[i];
    // Devices whose share would not fit take all their room and drop out.
    std::vector<size_t> still;
    bool capped = false;
    for (size_t i : active) {
      double exact = static_cast<double>(remaining) * bandwidth[i] / total;
      if (exact >= static_cast<double>(left[i])) {
        counts[i] += left[i];
        remaining -= left[i];
        left[i] = 0;
        capped = true;
      } else {
        still.push_back(i);
      }
    }
    active.swap(still);
    if (capped) continue;
    SplitLargestRemainder(bandwidth, active, total, remaining, &counts);
    remaining = 0;
  }
  return counts;
}

std::vector<uint16_t> InterleaveCounts(std::span<const uint64_t> counts) {
  uint64_t total = std::accumulate(counts.begin(), counts.end(), uint64_t{0});
  std::vector<uint16_t> order;
  order.reserve(total);
  std::vector<int64_t> current(counts.size(), 0);
  for (uint64_t n = 0; n < total; ++n) {
    size_t best = 0;
    for (size_t i = 0; i < counts.size(); ++i) {
      current[i] += static_cast<int64_t>(counts[i]);
      if (current[i] > current[best]) best = i;
    }
    current[best] -= static_cast<int64_t>(total);
    order.push_back(static_cast<uint16_t>(best));
  }
  return order;
}

}  // namespace kvpool
