#include "compute_model.h"

#include <algorithm>
#include <cstdio>

namespace kvpool::cli {

std::string ComputeModel::Label() const {
  char buf[160];
  std::snprintf(buf, sizeof(buf), "modelled GPU: %.0f TFLOP/s prefill, %.0f GiB/s host-to-device",
                gpu_tflops, h2d_gibps);
  return buf;
}

double ComputeModel::LayerPrefillSeconds(uint64_t prefix, uint64_t suffix) const {
  // Dense matmuls: 2 FLOPs per parameter per token; attention: QK^T and AV,
  // 4 * heads * head_dim FLOPs per (query, key) pair.
  double dense = 2.0 * active_params / layers * double(suffix);
  double keys = double(prefix) + double(suffix) / 2;  // causal average
  double attention = 4.0 * q_heads * head_dim * double(suffix) * keys;
  return (dense + attention) / (gpu_tflops * 1e12);
}

double ComputeModel::DecodeSeconds(uint64_t context) const {
  return double(layers) * LayerPrefillSeconds(context, 1);
}

ComputeModel ComputeModelFor(const std::string& preset, uint32_t layers, uint32_t head_dim) {
  ComputeModel m;
  m.layers = layers;
  m.head_dim = head_dim;
  if (preset.rfind("qwen3-30b-a3b", 0) == 0) {
    m.active_params = 3.3e9;
    m.q_heads = 32;
  } else if (preset.rfind("gpt-oss-20b", 0) == 0) {
    m.active_params = 3.6e9;
    m.q_heads = 64;
  } else if (preset.rfind("llama-3.1-8b", 0) == 0) {
    m.active_params = 8.0e9;
    m.q_heads = 32;
  } else {
    m.active_params = 1.0e9;
    m.q_heads = 8;
  }
  return m;
}

TtftBreakdown SimulateTtft(const ComputeModel& m, const std::vector<double>& layer_ready,
                           uint64_t layer_bytes, uint64_t prefix, uint64_t suffix) {
  double copy = double(layer_bytes) / (m.h2d_gibps * double(1ull << 30));
  double layer_compute = m.LayerPrefillSeconds(prefix, suffix);
  double copy_done = 0, compute_done = 0, waited = 0;
  for (double ready : layer_ready) {
    copy_done = std::max(ready, copy_done) + copy;
    double start = std::max(copy_done, compute_done);
    waited += start - compute_done;
    compute_done = start + layer_compute;
  }
  TtftBreakdown b;
  b.compute = layer_compute * double(layer_ready.size()) + m.DecodeSeconds(prefix + suffix);
  b.ttft = compute_done + m.DecodeSeconds(prefix + suffix);
  b.blocked_io = waited;
  return b;
}

}  // namespace kvpool::cli
