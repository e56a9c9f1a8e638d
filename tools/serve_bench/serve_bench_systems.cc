#include "serve_bench_systems.h"

#include <unistd.h>

#include <filesystem>

namespace kvpool::cli {
namespace {

namespace fs = std::filesystem;

constexpr const char* kLlamaServerPath = "third_party/llama-server-build/bin/llama-server";

bool Executable(const fs::path& p) { return ::access(p.c_str(), X_OK) == 0 && fs::is_regular_file(p); }

fs::path ThisExecutable() {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : self;
}

std::vector<fs::path> LlamaServerCandidates() {
  std::vector<fs::path> c = {fs::current_path() / kLlamaServerPath};
  fs::path dir = ThisExecutable().parent_path();
  for (int up = 0; up < 4 && !dir.empty() && dir != dir.root_path(); ++up) {
    c.push_back(dir / kLlamaServerPath);
    dir = dir.parent_path();
  }
  return c;
}

std::string HowToBuild() {
  return "build it from the pinned llama.cpp tree with scripts/setup_llama_server.sh (several "
         "minutes on 2 cores; it prints the binary's path), then pass --llama-server PATH if it "
         "is not found on its own; or run only kvpool serve with --systems kvpool";
}

}  // namespace

ServeBenchServerSpec LlamaServerSpec(const ServeBenchOptions& o, const std::string& binary,
                                     const std::string& model) {
  ServeBenchServerSpec s;
  s.name = "llama-server";
  s.description = "llama.cpp's llama-server (pinned tree), RAM prompt cache --cache-ram " +
                  std::to_string(o.dram_mib) + " MiB, lost on restart";
  s.argv = [o, binary, model](int port) {
    return std::vector<std::string>{
        binary, "-m", model, "-c", std::to_string(o.ctx), "-t", std::to_string(o.threads),
        "-tb", std::to_string(o.threads), "-np", "1", "--host", "127.0.0.1", "--port",
        std::to_string(port), "--cache-ram", std::to_string(o.dram_mib), "-fa", "on",
        "-ctk", "f16", "-ctv", "f16", "--no-webui"};
  };
  return s;
}

ServeBenchServerSpec KvpoolServeSpec(const ServeBenchOptions& o, const std::string& model) {
  ServeBenchServerSpec s;
  s.name = "kvpool";
  s.description = "kvpool serve: prompt cache in the Pool, " + std::to_string(o.dram_mib) +
                  " MiB DRAM copies + " + std::to_string(o.disk_mib) +
                  " MiB extent, kept across restarts" +
                  (o.no_partial_chunks ? ", whole chunks only" : "");
  s.cache_dir = (fs::path(o.dir) / "kvpool-cache").string();
  const std::string self = ThisExecutable().string();
  s.argv = [o, self, model, dir = s.cache_dir](int port) {
    std::vector<std::string> argv{
        self, "serve", "-m", model, "-c", std::to_string(o.ctx), "-t", std::to_string(o.threads),
        "-np", "1", "--host", "127.0.0.1", "--port", std::to_string(port), "--cache-ram",
        std::to_string(o.dram_mib), "--cache-dir", dir, "--cache-disk", std::to_string(o.disk_mib)};
    if (o.chunk_tokens > 0) {
      argv.push_back("--chunk-tokens");
      argv.push_back(std::to_string(o.chunk_tokens));
    }
    if (o.no_partial_chunks) argv.push_back("--no-partial-chunks");
    return argv;
  };
  return s;
}

Result<std::string> FindLlamaServer(const std::string& given) {
  if (!given.empty()) {
    if (Executable(given)) return given;
    return Status::NotFound("llama-server '" + given + "' is not an executable file; " + HowToBuild());
  }
  for (const fs::path& p : LlamaServerCandidates()) {
    if (Executable(p)) return fs::absolute(p).lexically_normal().string();
  }
  return Status::NotFound(std::string("llama-server not found (") + kLlamaServerPath +
                          " under the working directory or above this binary); " + HowToBuild());
}

}  // namespace kvpool::cli
