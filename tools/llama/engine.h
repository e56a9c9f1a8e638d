// llama.cpp as the `kvpool llama` commands use it: a model loaded once,
// contexts, tokens, greedy generation, and the generated models.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <kvpool/result.h>

struct llama_context;
struct llama_model;

namespace kvpool::cli {

struct ContextOptions {
  uint32_t n_ctx = 4096;
  uint32_t n_batch = 2048;  // tokens per llama_decode call
  uint32_t n_ubatch = 512;  // tokens per compute step
  int threads = 2;
};

struct LlamaContextDeleter {
  void operator()(llama_context* c) const;
};
using LlamaContextPtr = std::unique_ptr<llama_context, LlamaContextDeleter>;

class LlamaEngine {
 public:
  // Loads `path` (weights copied into memory, not mmapped, so that dropping
  // the page cache between measurements does not evict them).
  static Result<std::unique_ptr<LlamaEngine>> Load(const std::string& path);
  ~LlamaEngine();

  // A context with flash attention on (V stored as rows) and an F16 KV cache.
  Result<LlamaContextPtr> NewContext(const ContextOptions& options) const;

  std::vector<int32_t> Tokenize(std::string_view text, bool add_bos) const;
  std::string Piece(int32_t token) const;
  bool IsEndOfGeneration(int32_t token) const;
  // Greedy: argmax of the last logits, decoded one at a time at `pos`..; at
  // most `n` tokens, stopping at end-of-generation.
  Result<std::vector<int32_t>> Generate(llama_context* ctx, int32_t pos, int n) const;
  const std::string& path() const { return path_; }

 private:
  LlamaEngine(std::string path, llama_model* model) : path_(std::move(path)), model_(model) {}
  std::string path_;
  llama_model* model_;
};

// The model file to use: `path` when given; otherwise <dir>/<preset>.gguf,
// made with kvpool-mkmodel's writer (random weights) when it does not exist.
Result<std::string> EnsureModel(const std::string& path, const std::string& preset,
                                const std::string& dir);

// Deterministic English-like text of `words` words (for benchmarks).
std::string SyntheticDocument(size_t words, uint64_t seed);

// Exactly `n` tokens of SyntheticDocument text (`bos`: a leading BOS).
std::vector<int32_t> SyntheticTokens(const LlamaEngine& engine, size_t n, uint64_t seed, bool bos);

// The logits of the last token decoded in `ctx` (empty when it has none).
std::vector<float> LastLogits(llama_context* ctx);

}  // namespace kvpool::cli
