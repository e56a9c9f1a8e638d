// `kvpool llama bench-ttft`: time-to-first-token of a real engine (llama.cpp
// on CPU) for Long Doc QA. For each document length the document is
// prefilled cold, stored once into every system, and then queried with new
// questions: the document's KV is restored from the system (page cache
// dropped first) and only the question is decoded. Systems:
//   kvpool       two DRAM regions + an extent device (io_uring, O_DIRECT), one pool;
//                DRAM holds a quarter of the document (--dram-mib)
//   kvpool-large-dram  the same, DRAM large enough for the whole document:
//                placement by bandwidth alone decides the split
//   extent-only  the extent device alone (passthrough without DRAM)
//   file         one file per chunk through the filesystem, buffered (baseline)
// The models have RANDOM weights (kvpool-mkmodel): their text is gibberish,
// their compute cost and KV bytes per token are those of the real shape.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kvpool::cli {

struct TtftBenchOptions {
  std::string model;            // GGUF; default <models_dir>/<preset>.gguf
  std::string preset = "smol";  // made by kvpool-mkmodel when missing
  std::string models_dir = ".kvpool/models";
  std::vector<uint64_t> contexts = {2048, 4096, 8192, 16384};
  std::vector<std::string> systems = {"kvpool", "kvpool-large-dram", "extent-only", "file"};
  uint32_t question_tokens = 32;
  uint32_t chunk_tokens = 256;
  int threads = 2;
  int repeats = 3;                          // warm queries per system and document
  int cold_repeats = 1;                     // full prefills per document
  uint64_t dram_mib = 0;                    // kvpool's DRAM; 0 = a quarter of each document's KV
  std::string dir = ".kvpool/llama-bench";  // device files
  std::string out = ".kvpool/results";      // JSON and PNG
};

int RunTtftBench(const TtftBenchOptions& options);

}  // namespace kvpool::cli
