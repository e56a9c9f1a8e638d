// `kvpool bench workload`: multi-turn sessions over shared documents (Zipf
// popularity), with every system restarted in the middle of the trace.
// Systems, each on its own devices of identical capacities:
//   kvpool     2 DRAM regions + 1 extent, placement "copies"
//   partition  the same devices, placement "partition"
//   baseline   LMCache-style: CPU LRU tier of the same DRAM budget, written
//              through to one buffered file per chunk (files dropped from
//              the page cache after each write and read)
// Request i runs on every system before request i+1. Every delivered byte is
// checked against what was stored.
#pragma once

#include <string>
#include <vector>

#include "workload_trace.h"

namespace kvpool::cli {

struct WorkloadOptions {
  TraceOptions trace;
  std::string model = "llama-3.1-8b";
  double scale = 0.0625;          // KV bytes per token, for machines smaller than the model's
  double dram_mib = 128;          // host memory of every system (kvpool: 2 regions of half)
  double extent_mib = 1536;       // persistent capacity of every system
  std::vector<std::string> systems = {"kvpool", "partition", "baseline"};
  std::string dir = ".kvpool/workload";  // devices' files, one folder per system
  std::string out = ".kvpool/results";   // workload.json, workload.csv, workload.png
  bool progress = true;
};

// Returns a process exit code: 0 ok, 1 a system failed or returned wrong
// bytes, 2 bad options (the message names the option).
int RunWorkloadBench(const WorkloadOptions& options);

}  // namespace kvpool::cli
