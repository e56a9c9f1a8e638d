// Results of `kvpool bench serve` and their outputs: a table on stdout, and
// serve.json, serve.csv and serve.png (gnuplot) in the output directory.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "serve_bench_client.h"
#include "serve_bench_trace.h"

namespace kvpool::cli {

struct ServeBenchRequestRecord {
  uint32_t index = 0;  // in the trace
  ServeTraceRequest request;
  ServeChatSample sample;
};

// One server process of one system: before or after the restart.
struct ServeBenchPhase {
  std::string phase;         // "before restart", "after restart"
  double start_seconds = 0;  // process start until /health answered 200
  double wall_seconds = 0;   // first request sent until the last response ended
  std::vector<ServeBenchRequestRecord> requests;

  // Over the requests that succeeded.
  std::vector<double> Ttfts() const;
  double TtftP50() const;
  double TtftP90() const;
  double TtftMean() const;
  // TTFT p50 of the requests whose document an earlier request visited.
  double RevisitTtftP50() const;
  // sum(cached prompt tokens) / sum(prompt tokens).
  double CachedShare() const;
  double RequestsPerMinute() const;  // requests / wall minutes
  uint32_t Errors() const;
};

// One kind of restore probe, per probe document that succeeded.
struct ServeBenchProbe {
  std::vector<double> ttft_seconds;
  // Prompt tokens the server computed (prompt - cached): what its cache did
  // not restore (1 when it restored all but the last token).
  std::vector<uint64_t> computed_tokens;
};

struct ServeBenchSystemRun {
  std::string name;         // "llama-server", "kvpool"
  std::string description;  // what it is and how it caches
  std::string command;      // the first process's command line
  std::string first_exit;   // how the first process ended at the restart
  std::string last_exit;    // ... and the second at the end
  double stop_seconds = 0;  // SIGTERM until the first process had exited
  std::vector<ServeBenchPhase> phases;
  // The restore probe, after the trace: per probe document, the TTFT of a
  // prompt sent again after another document's (the server's own cache:
  // llama-server's RAM cache, kvpool's DRAM copies), and of the same prompt
  // as the first request after a restart (kvpool: from the SSD; llama-server:
  // computed again).
  ServeBenchProbe probe_hit;
  ServeBenchProbe probe_restart;
};

struct ServeBenchReport {
  nlohmann::json config;
  std::vector<ServeBenchSystemRun> systems;

  const ServeBenchSystemRun* Find(const std::string& name) const;
  std::string Table() const;
  nlohmann::json ToJson() const;
  // Writes serve.json, serve.csv and (with gnuplot) serve.png into `dir`.
  // Returns the paths written.
  std::vector<std::string> Write(const std::string& dir) const;
};

}  // namespace kvpool::cli

namespace kvpool::cli {

// <dir>/serve.png: TTFT p50 and p90 bars per system and phase, and every
// request's TTFT over the trace with the restart marked. False when gnuplot
// is missing or fails.
bool PlotServeBench(const ServeBenchReport& report, const std::string& dir);

}  // namespace kvpool::cli
