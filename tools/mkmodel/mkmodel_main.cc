// kvpool-mkmodel: writes a llama-architecture GGUF with seeded random weights.
//   kvpool-mkmodel tiny OUT.gguf [--vocab VOCAB.gguf] [--seed N]
// Presets: tiny (tests), smol (SmolLM2-135M dims), tinyllama (TinyLlama-1.1B
// dims). Random weights: generated text is gibberish; compute and KV size
// are those of the real shape.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "model_writer.h"

int main(int argc, char** argv) {
  CLI::App app{"kvpool-mkmodel: llama GGUF with seeded RANDOM weights at a real shape",
               "kvpool-mkmodel"};
  std::string preset;
  std::string out;
  std::string vocab = KVPOOL_DEFAULT_VOCAB;
  uint64_t seed = 42;
  app.add_option("preset", preset, "tiny | smol | tinyllama")->required();
  app.add_option("out", out, "output GGUF path")->required();
  app.add_option("--vocab", vocab, "GGUF whose tokenizer.* keys are copied")->capture_default_str();
  app.add_option("--seed", seed, "weight generator seed")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  auto spec = kvpool::mkmodel::PresetSpec(preset);
  if (!spec.ok()) {
    std::fprintf(stderr, "kvpool-mkmodel: %s\n", spec.status().ToString().c_str());
    return 2;
  }
  kvpool::Status s = kvpool::mkmodel::WriteModel(*spec, vocab, out, seed);
  if (!s.ok()) {
    std::fprintf(stderr, "kvpool-mkmodel: %s\n", s.ToString().c_str());
    return 1;
  }
  std::printf("kvpool-mkmodel: wrote %s (%s, random weights)\n", out.c_str(), preset.c_str());
  return 0;
}
