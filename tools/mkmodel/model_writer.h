// Writes llama-architecture GGUF models with seeded random weights at real
// shapes, for tests and benchmarks on machines where no pretrained weights
// can be had (see docs/llama_cpp.md). The text such a model generates is
// gibberish, but its compute cost and KV bytes per token are those of the
// real model of that shape.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <kvpool/result.h>
#include <kvpool/status.h>

namespace kvpool::mkmodel {

struct ModelSpec {
  std::string name;
  uint32_t n_embd = 0;
  uint32_t n_layer = 0;
  uint32_t n_head = 0;
  uint32_t n_head_kv = 0;
  uint32_t n_ff = 0;
  std::string weight_type;  // "q8_0", "q4_0" or "f16"
  uint32_t n_ctx_train = 32768;
};

// "tiny" (256/4/4/2/768, Q8_0), "smol" (SmolLM2-135M dims 576/30/9/3/1536,
// Q8_0), "tinyllama" (TinyLlama-1.1B dims 2048/22/32/4/5632, Q4_0).
Result<ModelSpec> PresetSpec(std::string_view name);
std::vector<std::string> PresetNames();

// Writes `out` (replaced atomically through "<out>.tmp"): every tokenizer.*
// key of the GGUF file `vocab` (e.g. llama.cpp's models/ggml-vocab-llama-spm.gguf),
// the llama.* hyper-parameters of `spec`, and weights drawn from a uniform
// distribution of variance 1/fan_in (norms = 1) by a generator seeded with
// `seed`. The same inputs always give the same bytes.
Status WriteModel(const ModelSpec& spec, const std::string& vocab, const std::string& out,
                  uint64_t seed);

}  // namespace kvpool::mkmodel
