// Header-only helpers for the llama.cpp tests (llama_*_test.cc): the tiny
// model made by the llama_models ctest fixture, contexts, tokens, logits.
// Only included when KVPOOL_HAVE_LLAMA.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "kvpool_llama.h"
#include "llama.h"
#include "test_util.h"

namespace kvpool::testing {

// The GGUF the llama_models fixture made ($KVPOOL_TEST_MODELS/<name>.gguf).
inline std::string TestModelPath(const std::string& name = "tiny") {
  const char* dir = std::getenv("KVPOOL_TEST_MODELS");
  return std::string(dir ? dir : "models") + "/" + name + ".gguf";
}

inline void QuietLlamaLog(ggml_log_level level, const char* text, void*) {
  if (level >= GGML_LOG_LEVEL_WARN && level != GGML_LOG_LEVEL_CONT) std::fputs(text, stderr);
}

struct ModelDeleter {
  void operator()(llama_model* m) const { llama_model_free(m); }
};
struct ContextDeleter {
  void operator()(llama_context* c) const { llama_free(c); }
};
using ModelPtr = std::unique_ptr<llama_model, ModelDeleter>;
using ContextPtr = std::unique_ptr<llama_context, ContextDeleter>;

inline ModelPtr LoadTestModel(const std::string& path) {
  static bool init = [] {
    llama_log_set(QuietLlamaLog, nullptr);
    llama_backend_init();
    return true;
  }();
  (void)init;
  llama_model_params mp = llama_model_default_params();
  return ModelPtr(llama_model_load_from_file(path.c_str(), mp));
}

struct ContextSpec {
  uint32_t n_ctx = 1024;
  uint32_t n_batch = 64;   // small, so that prompts are decoded in several pieces
  bool flash_attn = true;  // false: V is stored transposed
  ggml_type kv_type = GGML_TYPE_F16;
};

inline ContextPtr NewContext(llama_model* model, const ContextSpec& spec = {}) {
  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = spec.n_ctx;
  cp.n_batch = spec.n_batch;
  cp.n_ubatch = spec.n_batch;
  cp.n_seq_max = 1;
  cp.n_threads = cp.n_threads_batch = 1;  // tiny model; stable on a busy 2-core machine
  cp.flash_attn_type =
      spec.flash_attn ? LLAMA_FLASH_ATTN_TYPE_ENABLED : LLAMA_FLASH_ATTN_TYPE_DISABLED;
  cp.type_k = cp.type_v = spec.kv_type;
  return ContextPtr(llama_init_from_model(model, cp));
}

// Deterministic tokens inside the vocabulary (no tokenizer involved).
inline std::vector<int32_t> TestTokens(size_t n, uint64_t seed) {
  std::vector<int32_t> t(n);
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  for (auto& v : t) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    v = static_cast<int32_t>(100 + x % 30000);
  }
  return t;
}

inline std::vector<float> LastLogits(llama_context* ctx) {
  const int32_t n = llama_vocab_n_tokens(llama_model_get_vocab(llama_get_model(ctx)));
  const float* p = llama_get_logits_ith(ctx, -1);
  return p ? std::vector<float>(p, p + n) : std::vector<float>();
}

inline bool BitEqual(const std::vector<float>& a, const std::vector<float>& b) {
  return !a.empty() && a.size() == b.size() &&
         std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Decodes `prefix` then `suffix` into a fresh sequence 0 of `ctx`: the
// reference computation, with the same pieces as the connector uses.
inline std::vector<float> Recompute(llama_context* ctx, const std::vector<int32_t>& prefix,
                                    const std::vector<int32_t>& suffix) {
  llama_memory_seq_rm(llama_get_memory(ctx), 0, -1, -1);
  EXPECT_TRUE(llama::DecodeTokens(ctx, prefix, 0, 0, suffix.empty()).ok());
  EXPECT_TRUE(llama::DecodeTokens(ctx, suffix, static_cast<int32_t>(prefix.size()), 0, true).ok());
  return LastLogits(ctx);
}

inline std::vector<int32_t> Concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Skips the test when the fixture's model is missing.
#define KVPOOL_REQUIRE_TEST_MODEL(model_ptr, path)                                       \
  ModelPtr model_ptr = LoadTestModel(path);                                              \
  do {                                                                                   \
    if (!model_ptr) {                                                                    \
      GTEST_SKIP() << "cannot load " << (path) << " (made by the llama_models fixture)"; \
    }                                                                                    \
  } while (0)

}  // namespace kvpool::testing
