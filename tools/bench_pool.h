// `kvpool bench pool`: offloads a long prefix of one model shape into the
// configured pool, then times cold retrievals of it, side by side with the
// fastest device alone (same data, same run) and single-thread memcpy; then
// the DRAM regions alone against memcpy on every core and the extent device
// alone against fio on its own file, each with CPU seconds per GiB.
#pragma once

#include <cstdint>
#include <string>

namespace kvpool::cli {

struct PoolBenchOptions {
  std::string config;               // TOML file; "" = embedded default
  std::string state_dir = ".kvpool";
  std::string model;                // preset name overriding the config's model
  double scale = 1.0;               // KV-per-token scale (ModelShape::Scaled)
  uint64_t tokens = 8192;           // prefix length
  int repeats = 5;                  // cold retrievals to take the median of
  bool compare_alone = true;        // also time the fastest device alone
  // Also time the DRAM regions alone against memcpy on every core, and the
  // extent device alone against fio on its file, with CPU per GiB.
  bool references = true;
  std::string json;                 // write results here when not empty
};

// Returns a process exit code; prints errors naming the problem.
int RunPoolBench(const PoolBenchOptions& options);

}  // namespace kvpool::cli
