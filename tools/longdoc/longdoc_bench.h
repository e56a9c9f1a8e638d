// `kvpool bench longdoc`: the published long-context experiment, side by
// side. Documents of each context length are offloaded once into every
// system under test, then queried again (Long Doc QA): each query loads the
// cached prefix cold and prefills the uncached suffix (question). Systems:
//   baseline          LMCache-style: CPU tier, then one file per chunk, serialized
//   pool-fs           unified pool, bandwidth-aware, but SSD = file-per-chunk
//   passthrough-only  DRAM tier then extent tier, serialized (no pooling)
//   kvpool            unified pool: DRAM regions + extent, parallel, layer-wise
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <kvpool/model_shape.h>

#include "compute_model.h"

namespace kvpool::cli {

struct LongDocOptions {
  std::string model = "llama-3.1-8b";
  double scale = 0.25;  // KV bytes per token, for machines smaller than the sweep
  std::vector<uint64_t> contexts = {4096, 16384, 32768};
  std::vector<std::string> systems = {"baseline", "pool-fs", "passthrough-only", "kvpool"};
  int repeats = 3;                 // queries per document (cold each)
  double hit_ratio = 1.0;          // fraction of the document served from cache
  uint32_t question_tokens = 32;   // uncached suffix of every query
  uint64_t dram_mib = 0;           // host memory of every system; 0 = 1/4 of the largest document
  uint64_t ssd_mib = 0;            // SSD capacity; 0 = 1.25 x the largest document
  size_t window_chunks = 0;        // chunks generated and stored at a time; 0 = about 1 GiB
  std::string dir = ".kvpool/longdoc";        // devices' files
  std::string out = ".kvpool/results";        // JSON, CSV, PNG
  double gpu_tflops = 400;
  double h2d_gibps = 50;
  bool progress = true;
};

int RunLongDocBench(const LongDocOptions& options);

// "4K" -> 4096, "128k" -> 131072, "1000" -> 1000.
bool ParseTokenCount(const std::string& text, uint64_t* out);

// The shape the pool stores for `s`: sliding-window layers keep only their
// window, which is recomputed with the question, so only the full-attention
// layers are stored.
ModelShape StoredShape(const ModelShape& s);

}  // namespace kvpool::cli
