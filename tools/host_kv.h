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
  // Chunks [first_chunk, first_chunk + chunks) of a prefix: zero-filled when
  // seed == 0, else a deterministic pattern per segment. A window holds the
  // same bytes as those chunks of a whole HostKv with the same seed, so a
  // long prefix can be generated, stored and checked a window at a time.
  HostKv(const ModelShape& shape, size_t chunks, uint64_t seed, size_t first_chunk = 0)
      : seg_(shape.SegmentPayloadBytes()), first_chunk_(first_chunk) {
    for (uint32_t l = 0; l < shape.layers; ++l) {
      layers_.emplace_back(seg_ * std::max<size_t>(chunks, 1));
      if (seed == 0) continue;
      for (size_t c = 0; c < chunks; ++c) {
        FillPattern(layers_.back().data() + c * seg_, seg_, SegmentSeed(seed, l, first_chunk + c));
      }
    }
  }
  KvBuffer View() {
    KvBuffer b{{}, seg_, first_chunk_};
    for (auto& l : layers_) b.layer_base.push_back(l.data());
    return b;
  }
  ConstKvBuffer ConstView() const {
    ConstKvBuffer b{{}, seg_, first_chunk_};
    for (auto& l : layers_) b.layer_base.push_back(l.data());
    return b;
  }
  // True when this prefix holds, at the window's chunks, the window's bytes.
  // REQUIRES: the window lies within this HostKv's chunks.
  bool Holds(const HostKv& window, size_t window_chunks) const {
    const size_t at = (window.first_chunk_ - first_chunk_) * seg_;
    for (size_t l = 0; l < layers_.size(); ++l) {
      const std::byte* mine = layers_[l].data() + at;
      if (std::memcmp(mine, window.layers_[l].data(), window_chunks * seg_) != 0) return false;
    }
    return true;
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
  // `chunk` counts from this HostKv's first chunk.
  std::byte* Segment(size_t chunk, uint32_t layer) { return layers_[layer].data() + chunk * seg_; }
  size_t segment_bytes() const { return seg_; }
  uint32_t layers() const { return static_cast<uint32_t>(layers_.size()); }

 private:
  static uint64_t SegmentSeed(uint64_t seed, uint32_t layer, size_t chunk) {
    return (seed * 131 + layer) * 0x100000001b3ull + chunk;
  }

  size_t seg_;
  size_t first_chunk_;
  std::vector<AlignedBuffer> layers_;
};

}  // namespace kvpool::cli
