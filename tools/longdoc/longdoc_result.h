// Results of the long-context bench and their outputs (table, JSON, CSV, PNG).
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kv_system.h"

namespace kvpool::cli {

struct CellResult {  // one (system, context)
  std::string system;
  uint64_t context = 0;
  uint64_t cached_tokens = 0;
  uint64_t kv_bytes = 0;
  double offload_seconds = 0;
  std::vector<double> load_seconds;   // per query
  std::vector<double> ttft_seconds;   // per query (modelled compute)
  std::vector<double> blocked_seconds;
  double user_seconds = 0;            // CPU of all queries' loads
  double system_seconds = 0;
  std::vector<DeviceWork> work;       // during the queries
  double query_wall_seconds = 0;      // sum of load times (busy fraction denominator)
  bool verified = false;
};

struct LongDocReport {
  nlohmann::json config;
  std::vector<CellResult> cells;

  const CellResult* Find(const std::string& system, uint64_t context) const;
  // Prints the summary table with the kvpool/other ratios.
  void PrintTable() const;
  // Writes results.json, results.csv, ttft.png, busy.png into `dir`.
  // Returns the paths written (plots only when gnuplot is present).
  std::vector<std::string> Write(const std::string& dir) const;
};

}  // namespace kvpool::cli
