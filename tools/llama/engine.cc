#include "engine.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "kvpool_llama.h"
#include "llama.h"
#include "model_writer.h"

namespace kvpool::cli {
namespace {

void QuietLog(ggml_log_level level, const char* text, void*) {
  if (level >= GGML_LOG_LEVEL_WARN && level != GGML_LOG_LEVEL_CONT) std::fputs(text, stderr);
}

}  // namespace

void LlamaContextDeleter::operator()(llama_context* c) const { llama_free(c); }

Result<std::unique_ptr<LlamaEngine>> LlamaEngine::Load(const std::string& path) {
  static const bool init = [] {
    llama_log_set(QuietLog, nullptr);
    llama_backend_init();
    return true;
  }();
  (void)init;
  llama_model_params mp = llama_model_default_params();
  mp.load_mode = LLAMA_LOAD_MODE_NONE;  // read into memory: immune to drop_caches
  llama_model* m = llama_model_load_from_file(path.c_str(), mp);
  if (m == nullptr) return Status::IOError("llama.cpp cannot load model '" + path + "'");
  return std::unique_ptr<LlamaEngine>(new LlamaEngine(path, m));
}

LlamaEngine::~LlamaEngine() { llama_model_free(model_); }

Result<LlamaContextPtr> LlamaEngine::NewContext(const ContextOptions& o) const {
  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = o.n_ctx;
  cp.n_batch = o.n_batch;
  cp.n_ubatch = std::min(o.n_ubatch, o.n_batch);
  cp.n_seq_max = 1;
  cp.n_threads = cp.n_threads_batch = o.threads;
  cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_ENABLED;
  llama_context* c = llama_init_from_model(model_, cp);
  if (c == nullptr) {
    return Status::NoSpace("llama.cpp cannot create a context of " + std::to_string(o.n_ctx) +
                           " tokens");
  }
  return LlamaContextPtr(c);
}

std::vector<int32_t> LlamaEngine::Tokenize(std::string_view text, bool add_bos) const {
  const llama_vocab* vocab = llama_model_get_vocab(model_);
  std::vector<int32_t> out(text.size() + 8);
  int n = llama_tokenize(vocab, text.data(), static_cast<int32_t>(text.size()), out.data(),
                         static_cast<int32_t>(out.size()), add_bos, false);
  if (n < 0) {
    out.resize(static_cast<size_t>(-n));
    n = llama_tokenize(vocab, text.data(), static_cast<int32_t>(text.size()), out.data(),
                       static_cast<int32_t>(out.size()), add_bos, false);
  }
  out.resize(static_cast<size_t>(std::max(n, 0)));
  return out;
}

std::string LlamaEngine::Piece(int32_t token) const {
  char buf[256];
  int n = llama_token_to_piece(llama_model_get_vocab(model_), token, buf, sizeof(buf), 0, false);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

bool LlamaEngine::IsEndOfGeneration(int32_t token) const {
  return llama_vocab_is_eog(llama_model_get_vocab(model_), token);
}

Result<std::vector<int32_t>> LlamaEngine::Generate(llama_context* ctx, int32_t pos, int n) const {
  const int32_t vocab = llama_vocab_n_tokens(llama_model_get_vocab(model_));
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) {
    const float* logits = llama_get_logits_ith(ctx, -1);
    if (logits == nullptr) return Status::Aborted("no logits to sample from");
    const int32_t next = static_cast<int32_t>(std::max_element(logits, logits + vocab) - logits);
    out.push_back(next);
    if (IsEndOfGeneration(next) || i + 1 == n) break;
    KVP_RETURN_IF_ERROR(llama::DecodeTokens(ctx, {&next, 1}, pos++, 0, true));
  }
  return out;
}

Result<std::string> EnsureModel(const std::string& path, const std::string& preset,
                                const std::string& dir) {
  if (!path.empty()) return path;
  KVP_ASSIGN_OR_RETURN(mkmodel::ModelSpec spec, mkmodel::PresetSpec(preset));
  const std::string out = dir + "/" + preset + ".gguf";
  if (std::filesystem::exists(out)) return out;
  std::fprintf(stderr, "making %s with kvpool-mkmodel (RANDOM weights)...\n", out.c_str());
  KVP_RETURN_IF_ERROR(mkmodel::WriteModel(spec, KVPOOL_DEFAULT_VOCAB, out, 42));
  return out;
}

std::string SyntheticDocument(size_t words, uint64_t seed) {
  static const char* const kWords[] = {
      "the",       "cache",     "of",      "a",       "model",   "holds",    "keys",    "and",
      "values",    "for",       "every",   "token",   "in",      "long",     "context", "serving",
      "memory",    "is",        "scarce",  "so",      "systems", "move",     "them",    "to",
      "host",      "storage",   "when",    "request", "reuses",  "prefix",   "they",    "load",
      "back",      "quickly",   "time",    "first",   "depends", "on",       "how",     "fast",
      "this",      "happens",   "devices", "read",    "bytes",   "parallel", "layer",   "by",
      "documents", "questions", "answer",  "user",    "asks",    "about",    "report",  "contract",
      "section",   "page",      "table"};
  constexpr size_t kN = sizeof(kWords) / sizeof(kWords[0]);
  std::string text;
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 7;
  for (size_t i = 0; i < words; ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    text += kWords[x % kN];
    text += (i % 13 == 12) ? ". " : " ";
  }
  return text;
}

std::vector<int32_t> SyntheticTokens(const LlamaEngine& engine, size_t n, uint64_t seed, bool bos) {
  std::vector<int32_t> t;
  for (size_t words = n; t.size() < n; words *= 2)
    t = engine.Tokenize(SyntheticDocument(words, seed), bos);
  t.resize(n);
  return t;
}

std::vector<float> LastLogits(llama_context* ctx) {
  const float* p = llama_get_logits_ith(ctx, -1);
  const int32_t n = llama_vocab_n_tokens(llama_model_get_vocab(llama_get_model(ctx)));
  return p ? std::vector<float>(p, p + n) : std::vector<float>();
}

}  // namespace kvpool::cli
