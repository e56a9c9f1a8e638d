// Results of `kvpool llama bench-ttft`: table, JSON and PNG plot.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kvpool_llama.h"

namespace kvpool::cli {

// One warm query: the document restored from a system, the question decoded.
struct WarmSample {
  double ttft = 0;             // Prefill call to last logits ready
  double load = 0;             // retrieve + assemble + llama_state_seq_set_data
  double retrieve = 0;         // pool reads, into the blob (or staging, overlapped by assembly)
  double assemble = 0;         // assembly left after the last layer landed
  size_t assembled_bytes = 0;  // copied between the pool's buffer and the blob
  double restore = 0;          // llama_state_seq_set_data
  double decode = 0;           // the question's tokens
  size_t restored_tokens = 0;
  size_t computed_tokens = 0;
  std::vector<llama::SourceDevice> sources;
  std::string fallback;
};

struct SystemResult {
  std::string system;        // kvpool, extent-only, file
  std::string devices;       // what the pool is made of
  std::string engine;        // extent engine actually used
  double store_seconds = 0;  // snapshot + background store of the document
  std::vector<WarmSample> samples;
  bool logits_match = true;  // same logits as the first system for the same prompts
};

struct ContextResult {
  uint64_t context = 0;        // document tokens (all cached)
  uint64_t prompt_tokens = 0;  // document + question
  uint64_t kv_bytes = 0;       // the document's KV in llama.cpp's state
  std::vector<double> cold_ttft;
  std::vector<SystemResult> systems;
  const SystemResult* Find(const std::string& system) const;
};

struct TtftReport {
  nlohmann::json config;
  std::vector<ContextResult> contexts;

  std::string Table() const;
  // Where each system's median warm TTFT goes: pool read, assembly after
  // the read, llama_state_seq_set_data, decode of the question, the rest.
  std::string SplitTable() const;
  nlohmann::json ToJson() const;
  // Writes <dir>/llama-ttft.json, and llama-ttft.png when gnuplot is present.
  // Returns the paths written.
  std::vector<std::string> Write(const std::string& dir) const;
};

}  // namespace kvpool::cli
