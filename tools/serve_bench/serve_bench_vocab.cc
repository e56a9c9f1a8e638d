#include "serve_bench_vocab.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "gguf.h"
#include "llama.h"
#include "llama/engine.h"

namespace kvpool::cli {
namespace {

struct VocabModelDeleter {
  void operator()(llama_model* m) const { llama_model_free(m); }
};

void SilentLog(ggml_log_level, const char*, void*) {}

size_t TokenCount(const llama_vocab* vocab, const std::string& text) {
  const int n = llama_tokenize(vocab, text.data(), static_cast<int32_t>(text.size()), nullptr, 0,
                               false, false);
  return static_cast<size_t>(n < 0 ? -n : n);  // too small a buffer: minus the count
}

struct GgufDeleter {
  void operator()(gguf_context* g) const { gguf_free(g); }
};

// An unsigned integer metadata value of `g`, 0 when absent or not an integer.
uint64_t GgufUnsigned(const gguf_context* g, const std::string& key) {
  const int64_t id = gguf_find_key(g, key.c_str());
  if (id < 0) return 0;
  switch (gguf_get_kv_type(g, id)) {
    case GGUF_TYPE_UINT32: return gguf_get_val_u32(g, id);
    case GGUF_TYPE_INT32: return uint64_t(std::max(0, gguf_get_val_i32(g, id)));
    case GGUF_TYPE_UINT64: return gguf_get_val_u64(g, id);
    default: return 0;
  }
}

// F16 K and V of every layer, from the file's llama.cpp metadata; 0 when
// the file does not say.
uint64_t KvBytesPerToken(const std::string& model_path) {
  gguf_init_params params{/*no_alloc=*/true, /*ctx=*/nullptr};
  std::unique_ptr<gguf_context, GgufDeleter> g(gguf_init_from_file(model_path.c_str(), params));
  if (g == nullptr) return 0;
  const int64_t arch_id = gguf_find_key(g.get(), "general.architecture");
  if (arch_id < 0 || gguf_get_kv_type(g.get(), arch_id) != GGUF_TYPE_STRING) return 0;
  const std::string arch = gguf_get_val_str(g.get(), arch_id);
  const uint64_t layers = GgufUnsigned(g.get(), arch + ".block_count");
  const uint64_t heads = GgufUnsigned(g.get(), arch + ".attention.head_count");
  uint64_t kv_heads = GgufUnsigned(g.get(), arch + ".attention.head_count_kv");
  if (kv_heads == 0) kv_heads = heads;
  uint64_t head_dim = GgufUnsigned(g.get(), arch + ".attention.key_length");
  if (head_dim == 0 && heads > 0) head_dim = GgufUnsigned(g.get(), arch + ".embedding_length") / heads;
  return layers * kv_heads * head_dim * 2 * 2;
}

}  // namespace

Result<ServeModelFacts> ReadServeModelFacts(const std::string& model_path, uint32_t doc_tokens) {
  llama_log_set(SilentLog, nullptr);
  llama_model_params p = llama_model_default_params();
  p.vocab_only = true;
  std::unique_ptr<llama_model, VocabModelDeleter> model(
      llama_model_load_from_file(model_path.c_str(), p));
  if (model == nullptr) return Status::IOError("cannot read the vocabulary of '" + model_path + "'");
  constexpr size_t kSampleWords = 4000;
  const size_t sample = TokenCount(llama_model_get_vocab(model.get()),
                                   SyntheticDocument(kSampleWords, 12345));
  if (sample == 0) return Status::InvalidArgument("'" + model_path + "' tokenizes text to nothing");
  ServeModelFacts facts;
  const double words = double(doc_tokens) * double(kSampleWords) / double(sample);
  facts.doc_words = static_cast<uint32_t>(std::max(1.0, std::round(words)));
  facts.kv_bytes_per_token = KvBytesPerToken(model_path);
  return facts;
}

}  // namespace kvpool::cli
