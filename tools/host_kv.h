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
  // Bytes of the first `chunks` chunks that differ from `o`.
  uint64_t DifferingBytes(const HostKv& o, size_t chunks) const {
    uint64_t wrong = 0;
    for (size_t l = 0; l < layers_.size(); ++l) {
      const std::byte* a = layers_[l].data();
      const std::byte* b = o.layers_[l].data();
      if (std::memcmp(a, b, chunks * seg_) == 0) continue;
      for (size_t i = 0; i < chunks * seg_; ++i) wrong += a[i] != b[i];
    }
    return wrong;
  }
  // Zeroes the first `chunks` chunks of every layer.
  void Zero(size_t chunks) {
    for (auto& l : layers_) std::memset(l.data(), 0, chunks * seg_);
  }
  std::byte* Segment(size_t chunk, uint32_t layer) { return layers_[layer].data() + chunk * seg_; }
  size_t segment_bytes() const { return seg_; }
  uint32_t layers() const { return static_cast<uint32_t>(layers_.size()); }

 private:
  size_t seg_;
  std::vector<AlignedBuffer> layers_;
};

}  // namespace kvpool::cli
