// `kvpool bench reopen`: how long Pool::Open takes to recover a full extent
// device of about a million slots. Fills one extent device of 4 KiB
// segments (a one-layer custom shape) through Pool::Offload, closes the
// pool, reopens it and prints one line: slots, chunks recovered, reopen
// seconds. Recovery is linear in the slot count: seconds, not minutes.
#pragma once

#include <cstdint>
#include <string>

namespace CLI {
class App;
}

namespace kvpool::cli {

struct ReopenBenchOptions {
  std::string dir = ".kvpool";  // where the extent file goes (created if missing)
  // Slots of the device (= chunks stored). 0 = 2^20 (about 8.1 GiB of file:
  // 4 KiB header + 4 KiB payload per slot), fewer when the disk has less
  // than twice that free.
  uint32_t slots = 0;
  std::string engine = "uring";  // extent engine; psync is used when io_uring is unavailable
  bool keep = false;             // keep the extent file
};

// Registers the options of `kvpool bench reopen` on `command`.
void AddReopenBenchOptions(CLI::App& command, ReopenBenchOptions& options);

// Returns a process exit code; prints errors naming the problem.
int RunBenchReopen(const ReopenBenchOptions& options);

}  // namespace kvpool::cli
