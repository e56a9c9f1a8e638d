// What `kvpool bench serve` needs to know of a model file without loading
// its weights: how much synthetic text makes a document of N tokens, and
// the F16 KV bytes a token takes.
#pragma once

#include <cstdint>
#include <string>

#include <kvpool/result.h>

namespace kvpool::cli {

struct ServeModelFacts {
  uint32_t doc_words = 0;          // SyntheticDocument words of about the asked tokens
  uint64_t kv_bytes_per_token = 0; // K and V, F16, every layer
};

// Loads only the vocabulary and metadata of `model_path` and
// tokenizes a sample of synthetic text (word lengths vary, so documents are
// `doc_tokens` long within a few tokens).
Result<ServeModelFacts> ReadServeModelFacts(const std::string& model_path, uint32_t doc_tokens);

}  // namespace kvpool::cli
