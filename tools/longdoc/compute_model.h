// The labelled compute side of TTFT for models we cannot run here: a GPU of
// configurable throughput behind a host-to-device link of configurable
// bandwidth. Defaults: one H100 over PCIe 5.0 x16.
//
// TTFT = KV load (host) overlapped layer by layer with host-to-device copies
// and prefill of the uncached suffix, plus one decode step. A layer's
// prefill can start once its KV is on the GPU and the previous layer's
// compute is done. Systems without layer-wise delivery report every layer
// ready at the end of the whole load.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kvpool::cli {

struct ComputeModel {
  double gpu_tflops = 400;       // sustained dense BF16 TFLOP/s in prefill. Default: H100 (~40% of peak)
  double h2d_gibps = 50;         // host-to-device GiB/s. Default: PCIe 5.0 x16
  double active_params = 8.0e9;  // parameters touched per token (MoE: active ones)
  uint32_t layers = 32;
  uint32_t q_heads = 32;
  uint32_t head_dim = 128;

  std::string Label() const;

  // Seconds to prefill `suffix` new tokens of one layer after `prefix` cached ones.
  double LayerPrefillSeconds(uint64_t prefix, uint64_t suffix) const;
  // Seconds of one decode step over a context of `context` tokens (all layers).
  double DecodeSeconds(uint64_t context) const;
};

// Compute-model parameters of the presets (active parameters, query heads).
ComputeModel ComputeModelFor(const std::string& preset, uint32_t layers, uint32_t head_dim);

struct TtftBreakdown {
  double ttft = 0;          // seconds from request to first token
  double blocked_io = 0;    // seconds the GPU waited for KV (load + copy not hidden)
  double compute = 0;       // prefill + decode seconds
};

// `layer_ready[l]`: seconds after the request at which layer l's KV is in
// host memory. `layer_bytes`: bytes of one layer's KV for the cached prefix.
TtftBreakdown SimulateTtft(const ComputeModel& m, const std::vector<double>& layer_ready,
                           uint64_t layer_bytes, uint64_t prefix_tokens, uint64_t suffix_tokens);

}  // namespace kvpool::cli
