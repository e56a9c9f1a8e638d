// `kvpool llama`: llama.cpp with its prefix KV in the pool (built only with
// llama.cpp, KVPOOL_HAVE_LLAMA; see docs/llama_cpp.md).
//   kvpool llama ask --doc FILE --question Q [--question Q2 ...]
//   kvpool llama bench-ttft [--contexts 2K 4K 8K 16K]
#pragma once

#include <CLI/CLI.hpp>

#include "llama/ask.h"
#include "llama/ttft_bench.h"

namespace kvpool::cli {

class LlamaCommand {
 public:
  // Adds `llama` and its subcommands to `app`.
  explicit LlamaCommand(CLI::App& app);
  bool Parsed() const;
  // Runs the parsed subcommand; returns the process exit status.
  int Run();

 private:
  CLI::App* llama_ = nullptr;
  CLI::App* ask_ = nullptr;
  CLI::App* bench_ = nullptr;
  AskOptions ask_options_;
  TtftBenchOptions bench_options_;
  std::vector<std::string> contexts_;
};

}  // namespace kvpool::cli
