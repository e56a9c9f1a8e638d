// `kvpool bench remote`: the remote tier (a `redis` device on a Redis
// Cluster) against the cluster's own reference tool, and what it does for
// time-to-first-token.
//
//   A  throughput: pool W (extent + redis) stores a synthetic document of
//      --mib in segments of --segment-kib; each repeat a fresh pool R (small
//      extent + redis, so every chunk is remote-only) looks it up and
//      retrieves it into host memory, verified byte-exact against what W
//      stored. Interleaved with it, redis-benchmark SET+GET of values of the
//      same size on the same cluster, with as many connections and requests
//      in flight as R's redis device has. GiB/s of both, their ratio, and
//      R's CPU seconds per GiB.
//   B  TTFT with llama.cpp (only when built with it): node A recomputes the
//      document and stores it; node B (a fresh pool: extent + DRAM + redis)
//      restores it from the cluster for a new question; node C restores it
//      from its own SSD (page cache dropped). Medians of --repeats queries.
//   C  netem: whether a network namespace with a bandwidth-limited loopback
//      can be made here (reported; the cluster is not moved into it).
// Every key goes under a prefix unique to the run ("bench-<pid>-<time>:")
// and expires after 10 minutes; the keys redis-benchmark writes are removed
// after the run. Results: <out>/bench_remote.json.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include <kvpool/options.h>
#include <kvpool/result.h>

namespace CLI {
class App;
}

namespace kvpool::cli {

struct RemoteBenchOptions {
  std::string nodes;           // "host:port[,host:port...]": seeds of the cluster; required
  uint64_t mib = 512;          // document size of part A
  uint32_t segment_kib = 1024; // payload of one (chunk, layer) segment; a multiple of 4
  int repeats = 5;             // part A retrievals and part B queries (medians reported)
  uint32_t io_threads = 2;     // redis device worker threads
  uint32_t queue_depth = 32;   // redis device commands per batch and thread
  std::vector<std::string> llama_contexts = {"4K"};  // part B document lengths; {"none"}: skipped
  std::string preset = "smol";                       // part B model made by kvpool-mkmodel
  std::string model;                                 // part B GGUF; overrides --preset
  std::string models_dir = ".kvpool/models";
  int threads = 2;                                   // llama.cpp threads
  std::string dir = ".kvpool/bench-remote";          // device files
  std::string out = ".kvpool/results";               // bench_remote.json goes here
};

// Part B as the CLI provides it when built with llama.cpp. `redis` is the
// run's redis device template (nodes, key prefix, expiry, threads); the
// returned JSON is stored under "ttft". Prints its own tables.
using RemoteTtftFn = Result<nlohmann::json> (*)(const RemoteBenchOptions& options,
                                                const DeviceOptions& redis,
                                                const std::vector<uint64_t>& contexts);

// Registers the options of `kvpool bench remote` on `command`.
void AddRemoteBenchOptions(CLI::App& command, RemoteBenchOptions& options);

// OK, or InvalidArgument naming the option ("--segment-kib ...").
Status ValidateRemoteBenchOptions(const RemoteBenchOptions& options);

// Runs parts A, B (through `ttft`; nullptr: skipped, `ttft_skipped` says
// why) and C. Returns a process exit code: 0 ran, 1 a step failed (the
// message names it), 2 bad options.
int RunRemoteBench(const RemoteBenchOptions& options, RemoteTtftFn ttft,
                   const std::string& ttft_skipped);

// Part B (bench_remote_llama.cc, built with llama.cpp only).
Result<nlohmann::json> RunRemoteTtft(const RemoteBenchOptions& options, const DeviceOptions& redis,
                                     const std::vector<uint64_t>& contexts);

}  // namespace kvpool::cli
