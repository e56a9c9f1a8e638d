// Results of the workload bench and their outputs: a table on stdout, and
// workload.json, workload.csv and workload.png in the output directory.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "workload_system.h"

namespace kvpool::cli {

// One request on one system.
struct RequestRecord {
  uint32_t index = 0;         // in the trace
  uint32_t stored = 0;        // leading prompt chunks stored by earlier requests
  uint32_t served = 0;        // leading chunks the system delivered
  uint32_t chunks = 0;        // full chunks of the prompt
  double load_seconds = 0;    // lookup + retrieval, until the last byte landed
  double store_seconds = 0;   // offload of the prompt until stored
};

// One system before or after the restart.
struct PhaseResult {
  std::string phase;                  // "before restart", "after restart"
  uint64_t chunk_bytes = 0;           // all layers of one chunk
  std::vector<RequestRecord> requests;
  SystemCounters io;                  // during the phase's requests
  double cpu_user_seconds = 0;        // getrusage around the system's calls
  double cpu_system_seconds = 0;
  uint64_t wrong_bytes = 0;           // delivered bytes that differ from what was stored

  uint32_t RequestsWithStored() const;  // requests that had a cached prefix stored
  uint32_t RequestHits() const;         // ... and reused some of it
  double RequestHitRate() const;
  double ChunkHitRate() const;          // served chunks / stored chunks
  std::vector<double> LoadSeconds() const;  // of the requests with a prefix stored
  double LoadP50() const;
  double LoadP99() const;
  double DramShare() const;             // dram_bytes_served / bytes_served
  // Sum of load seconds over GiB delivered: the load time per byte, which
  // p50/p99 are not (a system that serves fewer chunks loads faster).
  double LoadSecondsPerGiB() const;
};

struct WorkloadSystemResult {
  std::string name;
  std::string description;
  std::vector<PhaseResult> phases;  // before, after the restart
  double restart_seconds = 0;       // close + reopen
  uint64_t found_after_restart = 0; // chunks the reopened system found
  uint64_t WrongBytes() const;
};

struct WorkloadReport {
  nlohmann::json config;
  std::vector<WorkloadSystemResult> systems;

  const WorkloadSystemResult* Find(const std::string& name) const;
  void PrintTable() const;
  // Writes workload.json, workload.csv and (with gnuplot) workload.png into
  // `dir`. Returns the paths written.
  std::vector<std::string> Write(const std::string& dir) const;
  nlohmann::json ToJson() const;
};

}  // namespace kvpool::cli
