// `kvpool serve`: the command line, and running the server until SIGINT or
// SIGTERM. Flag names follow llama-server where they overlap (docs/serve.md).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace kvpool::serve {

struct ServeOptions {
  std::string model;        // -m
  std::string alias;        // --alias: the model id clients name
  uint32_t n_ctx = 4096;    // -c: total, split over the slots
  int32_t slots = 1;        // -np
  int32_t threads = 0;      // -t: 0 = every core
  uint32_t n_batch = 2048;  // -b
  uint32_t n_ubatch = 512;  // -ub
  int32_t n_predict = -1;   // -n: max tokens when a request gives none (-1: to the context's end)
  std::string host = "127.0.0.1";
  int port = 8080;
  std::vector<std::string> api_keys;  // --api-key (repeatable), --api-key-file
  std::string api_key_file;
  int http_threads = 0;     // --threads-http: 0 = slots + max_queue + 2
  int timeout_s = 600;      // --timeout: read/write timeout of a connection
  size_t max_queue = 64;    // --max-queue
  // The prompt cache: DRAM (--cache-ram MiB) + an extent file in
  // --cache-dir (--cache-disk MiB), or the devices of --config.
  int64_t cache_ram_mib = 8192;
  std::string cache_dir = ".kvpool/serve-cache";
  uint64_t cache_disk_mib = 8192;
  std::string config;       // --config pool.toml
  // --pool unix:PATH: the shared pool of a kvpoold instead of an own one;
  // --pool-tenant names the daemon's tenant (docs/daemon.md).
  std::string pool_address;
  std::string pool_tenant = "default";
  // Tokens per cached chunk: a hit recomputes at most chunk_tokens - 1 of
  // the prompt it reuses; smaller chunks mean more, smaller segments.
  uint32_t chunk_tokens = 64;
  // --no-partial-chunks: store and restore whole chunks only (less pool
  // space per request; a hit then recomputes up to chunk_tokens - 1 tokens).
  bool no_partial_chunks = false;
  uint64_t max_offload_mib = 1024;  // --max-offload-mib: KV snapshots waiting to be stored
  bool no_cache = false;    // --no-cache: slots' own KV only
  // --print-kv-shape: print the [model] table a kvpoold pool needs for this
  // model (and --chunk-tokens), then exit.
  bool print_kv_shape = false;
};

// llama-server's multi-letter short flags (-np, -ub), which CLI11 cannot
// declare, rewritten to their long names.
std::vector<std::string> LlamaServerFlagAliases(std::vector<std::string> args);

// Adds the `serve` subcommand; when it is chosen, main calls RunServe.
CLI::App* AddServeCommand(CLI::App& app, ServeOptions& options);

// Loads the model, opens the pool, serves until SIGINT / SIGTERM, then stops
// cleanly (ends the requests, stores their KV, closes the pool). Returns the
// process exit code; errors are printed naming the flag or path.
int RunServe(const ServeOptions& options);

}  // namespace kvpool::serve
