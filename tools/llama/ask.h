// `kvpool llama ask`: questions about a document, with the document's KV
// kept in a kvpool pool. Each question's prompt is the document followed by
// the question; the first question prefills the document, later ones (in
// this run or, with persistent devices, a later run) restore it from the pool.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kvpool::cli {

struct AskOptions {
  std::string model;            // GGUF; default <models_dir>/<preset>.gguf
  std::string preset = "smol";  // made by kvpool-mkmodel when missing
  std::string models_dir = ".kvpool/models";
  std::string doc;                     // the document (a text file)
  std::vector<std::string> questions;  // one query each, in order
  int generate = 32;                   // tokens to generate per question
  int threads = 2;
  std::string config;  // pool TOML; its [model] is replaced by the model's KV shape
  std::string state_dir = ".kvpool/llama";  // default pool: <state_dir>/ssd0.extent
  uint64_t ssd_mib = 2048;                  // default pool's extent device
  uint64_t dram_mib = 0;                    // default pool: add a DRAM region (volatile)
};

int RunAsk(const AskOptions& options);

}  // namespace kvpool::cli
