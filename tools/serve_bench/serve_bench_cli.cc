#include "serve_bench.h"

namespace kvpool::cli {

ServeBenchCommand::ServeBenchCommand(CLI::App& bench) {
  ServeBenchOptions& o = options_;
  CLI::App& c = *bench.add_subcommand(
      "serve", "kvpool serve vs llama-server over HTTP: Zipf chat sessions, a restart");
  command_ = &c;
  c.add_option("--preset", o.preset, "generated model when --model is not given: smol, tinyllama "
               "(RANDOM weights)")->capture_default_str();
  c.add_option("--model", o.model, "GGUF model file for both servers");
  c.add_option("--models-dir", o.models_dir, "where generated models go")->capture_default_str();
  c.add_option("--documents", o.documents, "documents sessions are about")
      ->check(CLI::Range(1, 100000))->capture_default_str();
  c.add_option("--doc-tokens", o.doc_tokens, "tokens per document")
      ->check(CLI::Range(16, 1 << 20))->capture_default_str();
  c.add_option("--turns", o.turns, "requests per session")->check(CLI::Range(1, 64))->capture_default_str();
  c.add_option("--zipf", o.zipf, "Zipf exponent of document popularity")->capture_default_str();
  c.add_option("--new-session", o.new_session, "chance a request starts a session when one is open")
      ->check(CLI::Range(0.0, 1.0))->capture_default_str();
  c.add_option("--requests", o.requests, "requests in the trace (half before the restart)")
      ->check(CLI::Range(2, 1000000))->capture_default_str();
  c.add_option("--dram-mib", o.dram_mib, "DRAM prompt cache of each server (llama-server --cache-ram)")
      ->capture_default_str();
  c.add_option("--disk-mib", o.disk_mib, "kvpool serve's extent device")->capture_default_str();
  c.add_option("--chunk-tokens", o.chunk_tokens, "kvpool serve --chunk-tokens (0 = its default)")
      ->capture_default_str();
  c.add_flag("--no-partial-chunks", o.no_partial_chunks,
             "kvpool serve --no-partial-chunks: whole chunks only, to see what partial chunks buy");
  c.add_option("--threads", o.threads, "threads of each server")->check(CLI::Range(1, 256))->capture_default_str();
  c.add_option("--ctx", o.ctx, "context of each server")->check(CLI::Range(256, 1 << 20))->capture_default_str();
  c.add_option("--max-tokens", o.max_tokens, "tokens generated per request")
      ->check(CLI::Range(1, 4096))->capture_default_str();
  c.add_option("--seed", o.seed, "trace seed")->capture_default_str();
  c.add_option("--llama-server", o.llama_server,
               "llama-server binary (default: third_party/llama-server-build/bin/llama-server, "
               "made by scripts/setup_llama_server.sh)");
  c.add_option("--systems", o.systems, "llama-server kvpool, in the order they run")->capture_default_str();
  c.add_option("--out", o.out, "where serve.json, .csv and .png go")->capture_default_str();
  c.add_option("--dir", o.dir, "kvpool serve's cache directory and the server logs")->capture_default_str();
}

std::unique_ptr<ServeBenchCommand> AddServeBench(CLI::App& bench) {
  return std::make_unique<ServeBenchCommand>(bench);
}

}  // namespace kvpool::cli
