// The two servers `kvpool bench serve` compares, as command lines.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <kvpool/result.h>

#include "serve_bench.h"

namespace kvpool::cli {

struct ServeBenchServerSpec {
  std::string name;         // "llama-server", "kvpool"
  std::string description;
  std::string cache_dir;    // kept across the restart, emptied before the first start; "" none
  std::function<std::vector<std::string>(int port)> argv;  // listening on 127.0.0.1:port
};

// llama-server from the pinned tree: -m, -c, -t/-tb, -np 1, flash attention,
// F16 KV, --cache-ram `dram_mib`, no web UI.
ServeBenchServerSpec LlamaServerSpec(const ServeBenchOptions& o, const std::string& binary,
                                     const std::string& model);
// This binary's `serve`: the same model, context, threads and slots, its
// prompt cache the Pool: --cache-ram `dram_mib` of DRAM copies and an extent
// of `disk_mib` in <dir>/kvpool-cache.
ServeBenchServerSpec KvpoolServeSpec(const ServeBenchOptions& o, const std::string& model);

// The llama-server binary: `given` when not empty (it must be executable),
// else third_party/llama-server-build/bin/llama-server under the working
// directory or a directory above this executable. NotFound says how to
// build it.
Result<std::string> FindLlamaServer(const std::string& given);

}  // namespace kvpool::cli
