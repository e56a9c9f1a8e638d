// `kvpool bench daemon`: the same retrieval in-process (Pool::Open) and
// through kvpoold (ClientPool, zero-copy SharedBuffer destination), on the
// same devices, side by side in one run.
//
// Two configurations, each with one device, identical for both systems:
//   SSD   one extent device (<dir>/bench.extent, data + 25%, bandwidth
//         configured so no probe runs); the data is written once in-process
//         and both systems read what is on the extent;
//   DRAM  one DRAM region, to show the IPC overhead when the device is fast;
//         DRAM does not survive a close, so every open offloads it again.
// Rounds alternate, in-process then daemon, twice per configuration. Each
// round: Pool::Open, or start kvpoold and connect a ClientPool whose
// destination is a SharedBuffer (zero-copy); one verified, untimed retrieval
// (it also takes the first-touch page faults); `repeats` timed retrievals of
// the whole prefix; 200 one-chunk requests (all layers) and 200 one-key
// Lookups for the latency; close, or disconnect and SIGTERM kvpoold.
// Reported: median GiB/s, daemon/in-process (target 0.90 for 1 MiB
// segments), p50/p99 of the one-chunk requests and the daemon's added
// latency (median daemon - median in-process), CPU and page faults of both
// processes, and the machine's load average (other work skews the numbers).
// kvpoold is always stopped: on errors, on SIGINT/SIGTERM/SIGHUP (which also
// remove the bench's files) and, through PR_SET_PDEATHSIG, if kvpool dies.
#pragma once

#include <cstdint>
#include <string>

namespace CLI {
class App;
}

namespace kvpool::cli {

struct DaemonBenchOptions {
  std::string dir;             // extent file, kvpoold socket/config; "" = mkdtemp under /tmp
  uint64_t mib = 1024;         // data volume of the prefix
  uint32_t segment_kib = 1024; // payload of one (chunk, layer) segment; a multiple of 4
  int repeats = 5;             // timed whole-prefix retrievals per round (median reported)
  std::string kvpoold;         // "" = next to this binary, or ../daemon/kvpoold (build tree)
  std::string engine = "uring";  // extent engine; psync when io_uring is unsupported
  std::string region_pages = "transparent";  // client region: transparent, hugetlb or small
  bool keep = false;           // keep the directory and its files
  std::string json;            // write results here when not empty
};

// Registers the options of `kvpool bench daemon` on `command`.
void AddDaemonBenchOptions(CLI::App& command, DaemonBenchOptions& options);

// Returns a process exit code: 0 when it ran (target met or not), 1 when a
// step failed (the message names it), 2 for bad options.
int RunDaemonBench(const DaemonBenchOptions& options);

}  // namespace kvpool::cli
