#include "retrieval/read_plan.h"

#include <algorithm>

namespace kvpool {
namespace {

class Planner {
 public:
  Planner(std::span<const DeviceLoad> devices, uint64_t bytes)
      : devices_(devices), bytes_(static_cast<double>(bytes)) {
    for (const DeviceLoad& d : devices) load_.push_back(static_cast<double>(d.queued_bytes));
  }

  bool Usable(uint16_t d) const { return d != kNoDevice && devices_[d].gibps > 0; }

  double FinishIfAdded(uint16_t d) const { return (load_[d] + bytes_) / devices_[d].gibps; }

  void Add(uint16_t d) { load_[d] += bytes_; }

  // The usable copy that would finish first (ties: DRAM copy, home,
  // remote); kNoDevice when none is.
  uint16_t Best(const SegmentCopies& s) const {
    uint16_t best = kNoDevice;
    double best_finish = 0;
    for (uint16_t d : {s.copy, s.home, s.remote}) {
      if (!Usable(d)) continue;
      const double finish = FinishIfAdded(d);
      if (best == kNoDevice || finish < best_finish) {
        best = d;
        best_finish = finish;
      }
    }
    return best;
  }

  // Exactly one usable copy: nothing to choose.
  bool Forced(const SegmentCopies& s) const {
    return int{Usable(s.home)} + int{Usable(s.copy)} + int{Usable(s.remote)} == 1;
  }

 private:
  std::span<const DeviceLoad> devices_;
  double bytes_;
  std::vector<double> load_;  // bytes each device has to read
};

}  // namespace

std::vector<uint16_t> PlanReads(std::span<const SegmentCopies> segments, size_t per_layer,
                                std::span<const DeviceLoad> devices, uint64_t bytes) {
  std::vector<uint16_t> out(segments.size(), kNoDevice);
  if (per_layer == 0) return out;
  Planner plan(devices, bytes);
  for (size_t begin = 0; begin < segments.size(); begin += per_layer) {
    const size_t end = std::min(segments.size(), begin + per_layer);
    for (size_t i = begin; i < end; ++i) {
      if (!plan.Forced(segments[i])) continue;
      out[i] = plan.Best(segments[i]);
      plan.Add(out[i]);
    }
    for (size_t i = begin; i < end; ++i) {
      if (plan.Forced(segments[i])) continue;
      out[i] = plan.Best(segments[i]);
      if (out[i] != kNoDevice) plan.Add(out[i]);
    }
  }
  return out;
}

}  // namespace kvpool
