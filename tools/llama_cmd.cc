#include "llama_cmd.h"

#include <cstdio>

#include "longdoc/longdoc_bench.h"

namespace kvpool::cli {
namespace {

void AddModelOptions(CLI::App& c, std::string& model, std::string& preset, std::string& dir,
                     int& threads) {
  c.add_option("--model", model, "GGUF model file (default: a generated --preset model)");
  c.add_option("--preset", preset,
               "generated model when --model is not given: tiny, smol, tinyllama "
               "(RANDOM weights, made by kvpool-mkmodel)")
      ->capture_default_str();
  c.add_option("--models-dir", dir, "where generated models go")->capture_default_str();
  c.add_option("--threads", threads, "llama.cpp threads")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
}

}  // namespace

LlamaCommand::LlamaCommand(CLI::App& app) {
  llama_ = app.add_subcommand("llama", "llama.cpp with its prefix KV in the pool");
  llama_->require_subcommand(1);

  AskOptions& a = ask_options_;
  ask_ = llama_->add_subcommand(
      "ask", "questions about a document; prints TTFT and where the KV came from");
  AddModelOptions(*ask_, a.model, a.preset, a.models_dir, a.threads);
  ask_->add_option("--doc", a.doc, "the document (text file)")->required();
  ask_->add_option("--question", a.questions, "a question (repeat for more)")->required();
  ask_->add_option("--generate", a.generate, "tokens to generate per question")
      ->capture_default_str();
  ask_->add_option("--config", a.config,
                   "pool TOML (its [model] is replaced by the model's KV shape)");
  ask_->add_option("--state-dir", a.state_dir, "default pool's directory")->capture_default_str();
  ask_->add_option("--ssd-mib", a.ssd_mib, "default pool's extent device size")
      ->capture_default_str();
  ask_->add_option("--dram-mib", a.dram_mib,
                   "add a DRAM region to the default pool (not kept across runs)");

  TtftBenchOptions& b = bench_options_;
  bench_ = llama_->add_subcommand("bench-ttft",
                                  "TTFT cold vs warm from kvpool, extent-only and file-per-chunk");
  AddModelOptions(*bench_, b.model, b.preset, b.models_dir, b.threads);
  bench_->add_option("--contexts", contexts_, "document lengths in tokens, e.g. 2K 4K 8K 16K");
  bench_->add_option("--systems", b.systems, "kvpool kvpool-large-dram extent-only file")
      ->capture_default_str();
  bench_->add_option("--question-tokens", b.question_tokens, "uncached tokens per query")
      ->capture_default_str();
  bench_->add_option("--chunk-tokens", b.chunk_tokens, "tokens per chunk")->capture_default_str();
  bench_->add_option("--repeats", b.repeats, "warm queries per system")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  bench_->add_option("--cold-repeats", b.cold_repeats, "cold prefills per document")
      ->check(CLI::Range(1, 100));
  bench_->add_option("--dram-mib", b.dram_mib, "kvpool DRAM (0 = a quarter of each document's KV)");
  bench_->add_option("--dir", b.dir, "device files")->capture_default_str();
  bench_->add_option("--out", b.out, "JSON and PNG")->capture_default_str();
}

bool LlamaCommand::Parsed() const { return llama_->parsed(); }

int LlamaCommand::Run() {
  if (ask_->parsed()) return RunAsk(ask_options_);
  if (!contexts_.empty()) {
    bench_options_.contexts.clear();
    for (const std::string& c : contexts_) {
      uint64_t n = 0;
      if (!ParseTokenCount(c, &n)) {
        std::fprintf(stderr,
                     "kvpool llama bench-ttft: --contexts: '%s' is not a token count (e.g. 16K)\n",
                     c.c_str());
        return 2;
      }
      bench_options_.contexts.push_back(n);
    }
  }
  return RunTtftBench(bench_options_);
}

}  // namespace kvpool::cli
