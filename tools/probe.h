// `kvpool probe`: what this machine offers (NUMA, huge pages, io_uring
// features, O_DIRECT per configured path, SPDK) and, for every configured
// device, what was chosen, its contention group, its read and write
// bandwidth alone and its placement bandwidth once its group was read at
// once (core/bandwidth_probe.h).
//
// A probe measures; it never allocates more than its probe size and leaves
// nothing behind. Without --config, the default configuration's devices are
// probed at probe size in a scratch directory (mkdtemp, on the filesystem of
// --state-dir or its nearest existing parent), removed afterwards. With
// --config, DRAM regions are probed at probe size, and extent files and chunk
// directories through probe-sized twins in a scratch directory beside the
// configured path: a missing extent is never created. Block devices and
// SPDK namespaces are probed in place, in free slots only.
#pragma once

#include <cstdint>
#include <string>

namespace kvpool::cli {

struct ProbeOptions {
  std::string config;  // "" = embedded default, probed in a scratch directory
  std::string state_dir = ".kvpool";  // only its filesystem is used (nothing is created in it)
  uint32_t probe_mib = 256;  // bytes written then read per device
  bool measure = true;       // measure device bandwidth
  std::string json;          // write results here when not empty
};

int RunProbe(const ProbeOptions& options);

}  // namespace kvpool::cli
