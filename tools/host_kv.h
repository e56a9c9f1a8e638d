// Caller-side KV of one prefix for the benchmarks: one 4 KiB-aligned array
// per layer, chunk-major inside a layer (the KvBuffer layout).
#pragma once

#include <cstring>
#include <vector>

#include <kvpool/kvpool.h>

#include "bench_util.h"
#include "util/aligned_buffer.h"

namespace kvpool::cli {

class HostKv {
 public:
  // Zero-filled when seed == 0, else a deterministic pattern per layer.
  HostKv(const ModelShape& shape, size_t chunks, uint64_t seed) : seg_(shape.SegmentPayloadBytes()) {
    for (uint32_t l = 0; l < shape.layers; ++l) {
      layers_.emplace_back(seg_ * std::max<size_t>(chunks, 1));
      if (seed != 0) FillPattern(layers_.back().data(), layers_.back().size(), seed * 131 + l);
    }
  }
  KvBuffer View() {
    KvBuffer b{{}, seg_, 0};
    for (auto& l : layers_) b.layer_base.push_back(l.data());
    return b;
  }
  ConstKvBuffer ConstView() const {
    ConstKvBuffer b{{}, seg_, 0};
    for (auto& l : layers_) b.layer_base.push_back(l.data());
    return b;
  }
  // True when the first `chunks` chunks of every layer are equal.
  bool Equals(const HostKv& o, size_t chunks) const {
    for (size_t l = 0; l < layers_.size(); ++l) {
      if (std::memcmp(layers_[l].data(), o.layers_[l].data(), chunks * seg_) != 0) return false;
    }
    return true;
  }

 private:
  size_t seg_;
  std::vector<AlignedBuffer> layers_;
};

}  // namespace kvpool::cli
