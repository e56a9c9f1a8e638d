#include "model.h"

#include <cstdio>
#include <filesystem>

#include "llama.h"

namespace kvpool::serve {
namespace {

void WarningsOnly(ggml_log_level level, const char* text, void*) {
  if (level >= GGML_LOG_LEVEL_WARN && level != GGML_LOG_LEVEL_CONT) std::fputs(text, stderr);
}

// Applies `tmpl` (a llama.cpp built-in name or a GGUF template it detects);
// negative when llama.cpp does not support it.
int32_t Apply(const std::string& tmpl, std::span<const ChatMessage> messages, std::string* out) {
  std::vector<llama_chat_message> chat;
  size_t chars = 0;
  for (const ChatMessage& m : messages) {
    chat.push_back({m.role.c_str(), m.content.c_str()});
    chars += m.role.size() + m.content.size();
  }
  std::string buf(2 * chars + 256, '\0');
  int32_t n = llama_chat_apply_template(tmpl.c_str(), chat.data(), chat.size(), true, buf.data(),
                                        static_cast<int32_t>(buf.size()));
  if (n > static_cast<int32_t>(buf.size())) {
    buf.resize(static_cast<size_t>(n));
    n = llama_chat_apply_template(tmpl.c_str(), chat.data(), chat.size(), true, buf.data(), n);
  }
  if (n >= 0) *out = buf.substr(0, static_cast<size_t>(n));
  return n;
}

}  // namespace

ServeModel::ServeModel(std::string path, std::string id, llama_model* model)
    : path_(std::move(path)), id_(std::move(id)), model_(model) {
  const char* gguf = llama_model_chat_template(model_, nullptr);
  const ChatMessage probe[] = {{"user", "hi"}};
  std::string ignored;
  if (gguf != nullptr && Apply(gguf, probe, &ignored) >= 0) {
    template_ = gguf;
    template_name_ = template_.size() < 32 ? template_ : "from the GGUF";
  } else {
    template_ = "chatml";
    template_name_ = gguf == nullptr ? "chatml (the GGUF has none)"
                                     : "chatml (the GGUF's is not one llama.cpp knows)";
  }
}

Result<std::unique_ptr<ServeModel>> ServeModel::Load(const std::string& path,
                                                     const std::string& alias) {
  static const bool init = [] {
    llama_log_set(WarningsOnly, nullptr);
    llama_backend_init();
    return true;
  }();
  (void)init;
  if (!std::filesystem::is_regular_file(path)) {
    return Status::InvalidArgument("-m '" + path + "': no such model file");
  }
  llama_model_params mp = llama_model_default_params();
  llama_model* m = llama_model_load_from_file(path.c_str(), mp);
  if (m == nullptr) return Status::IOError("llama.cpp cannot load model '" + path + "'");
  std::string id = alias.empty() ? std::filesystem::path(path).filename().string() : alias;
  return std::unique_ptr<ServeModel>(new ServeModel(path, std::move(id), m));
}

ServeModel::~ServeModel() { llama_model_free(model_); }

uint32_t ServeModel::n_ctx_train() const {
  return static_cast<uint32_t>(llama_model_n_ctx_train(model_));
}

std::vector<int32_t> ServeModel::Tokenize(std::string_view text, bool add_special) const {
  const llama_vocab* vocab = llama_model_get_vocab(model_);
  std::vector<int32_t> out(text.size() + 8);
  int32_t n = llama_tokenize(vocab, text.data(), static_cast<int32_t>(text.size()), out.data(),
                             static_cast<int32_t>(out.size()), add_special, true);
  if (n < 0) {
    out.resize(static_cast<size_t>(-n));
    n = llama_tokenize(vocab, text.data(), static_cast<int32_t>(text.size()), out.data(),
                       static_cast<int32_t>(out.size()), add_special, true);
  }
  out.resize(static_cast<size_t>(std::max(n, 0)));
  return out;
}

std::string ServeModel::Piece(int32_t token) const {
  char buf[256];
  const llama_vocab* vocab = llama_model_get_vocab(model_);
  int32_t n = llama_token_to_piece(vocab, token, buf, sizeof(buf), 0, false);
  if (n >= 0) return std::string(buf, static_cast<size_t>(n));
  std::string big(static_cast<size_t>(-n), '\0');
  n = llama_token_to_piece(vocab, token, big.data(), static_cast<int32_t>(big.size()), 0, false);
  big.resize(static_cast<size_t>(std::max(n, 0)));
  return big;
}

bool ServeModel::IsEndOfGeneration(int32_t token) const {
  return llama_vocab_is_eog(llama_model_get_vocab(model_), token);
}

int32_t ServeModel::n_vocab() const {
  return llama_vocab_n_tokens(llama_model_get_vocab(model_));
}

Result<std::string> ServeModel::ApplyChatTemplate(std::span<const ChatMessage> messages) const {
  std::string text;
  if (Apply(template_, messages, &text) < 0) {
    return Status::InvalidArgument("messages: the chat template '" + template_name_ +
                                   "' cannot format them");
  }
  return text;
}

}  // namespace kvpool::serve
