// The model kvpool serve runs: a llama.cpp model loaded once, its tokenizer
// and chat template. Thread-safe after Load (llama.cpp's vocabulary and
// template functions only read the model).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <kvpool/result.h>

#include "generation.h"

struct llama_model;

namespace kvpool::serve {

class ServeModel {
 public:
  // Loads the GGUF at `path` (mmapped, as llama-server does). `alias` is the
  // id /v1/models reports and requests must name; "" = the file name.
  // Errors: IOError naming the path when llama.cpp cannot load it.
  static Result<std::unique_ptr<ServeModel>> Load(const std::string& path,
                                                  const std::string& alias);
  ~ServeModel();
  ServeModel(const ServeModel&) = delete;
  ServeModel& operator=(const ServeModel&) = delete;

  llama_model* get() const { return model_; }
  const std::string& path() const { return path_; }
  const std::string& id() const { return id_; }
  uint32_t n_ctx_train() const;
  int32_t n_vocab() const;  // valid token ids are [0, n_vocab)

  // Text -> tokens. `add_special` adds BOS where the vocabulary wants it;
  // special tokens written in the text (e.g. "<|im_start|>") are parsed.
  std::vector<int32_t> Tokenize(std::string_view text, bool add_special) const;
  // The bytes of one token (may end inside a UTF-8 character).
  std::string Piece(int32_t token) const;
  bool IsEndOfGeneration(int32_t token) const;

  // The model's chat template (GGUF tokenizer.chat_template; ChatML when the
  // file has none, or llama.cpp does not know the one it has) applied to
  // `messages`, with the assistant's turn opened.
  // Errors: InvalidArgument when the template rejects the messages.
  Result<std::string> ApplyChatTemplate(std::span<const ChatMessage> messages) const;
  // The template's name as llama.cpp detects it, or "chatml (fallback)".
  const std::string& chat_template_name() const { return template_name_; }

 private:
  ServeModel(std::string path, std::string id, llama_model* model);
  std::string path_;
  std::string id_;
  llama_model* model_;
  std::string template_;       // passed to llama_chat_apply_template
  std::string template_name_;
};

}  // namespace kvpool::serve
