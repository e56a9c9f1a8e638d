// `kvpool bench serve`: `kvpool serve` side by side with the real
// llama-server (built from the same pinned llama.cpp tree by
// scripts/setup_llama_server.sh), same model file, threads and context.
//
// One client (this process) drives each server the same way over HTTP: the
// same multi-turn chat trace (serve_bench_trace.h), one streamed request at a
// time. The systems run one after the other, never at once. Each system
// serves the first half of the trace, is stopped with SIGTERM and started
// again (kvpool serve on the same cache directory, so its extent survives;
// llama-server loses its RAM prompt cache), then serves the second half.
// llama-server gets `--cache-ram` equal to kvpool's DRAM budget; kvpool serve
// adds an extent device of `disk_mib`.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace kvpool::cli {

struct ServeBenchOptions {
  std::string preset = "smol";  // generated model when `model` is empty
  std::string model;
  std::string models_dir = ".kvpool/models";
  uint32_t documents = 24;  // 24 x 2K tokens x 23,040 B (smol) = 4.2x 256 MiB
  uint32_t doc_tokens = 2048;
  uint32_t turns = 4;
  double zipf = 1.0;
  double new_session = 0.35;
  uint32_t requests = 80;  // whole trace; the restart comes after half
  uint32_t dram_mib = 256;
  uint32_t disk_mib = 4096;
  uint32_t chunk_tokens = 0;  // kvpool serve --chunk-tokens; 0 = its default
  bool no_partial_chunks = false;  // kvpool serve --no-partial-chunks
  int threads = 2;
  uint32_t ctx = 4096;
  uint32_t max_tokens = 8;
  uint64_t seed = 1;
  std::string llama_server;  // empty: third_party/llama-server-build/bin/llama-server, searched
  std::vector<std::string> systems = {"llama-server", "kvpool"};
  std::string out = ".kvpool/results";
  std::string dir = ".kvpool/serve-bench";  // kvpool's cache directory and the server logs
  double start_timeout_seconds = 600;
  double stop_grace_seconds = 300;
};

// Returns the process exit status: 0, 1 on a failure, 2 on bad options or
// a missing llama-server binary.
int RunServeBench(const ServeBenchOptions& o);

// The `serve` subcommand of `kvpool bench`.
class ServeBenchCommand {
 public:
  explicit ServeBenchCommand(CLI::App& bench);
  bool Parsed() const { return command_->parsed(); }
  int Run() const { return RunServeBench(options_); }

 private:
  CLI::App* command_ = nullptr;
  ServeBenchOptions options_;
};

// Adds `serve` to `bench` (kvpool's `bench` command group).
std::unique_ptr<ServeBenchCommand> AddServeBench(CLI::App& bench);

}  // namespace kvpool::cli
