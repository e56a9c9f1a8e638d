// `kvpool probe`: what this machine offers (NUMA, huge pages, io_uring
// features, O_DIRECT per configured path, SPDK) and, for every configured
// device, what was chosen and its measured read and write bandwidth.
#pragma once

#include <string>

namespace kvpool::cli {

struct ProbeOptions {
  std::string config;  // "" = embedded default
  std::string state_dir = ".kvpool";
  uint32_t probe_mib = 256;  // bytes written then read per device
  bool measure = true;       // measure device bandwidth
  std::string json;          // write results here when not empty
};

int RunProbe(const ProbeOptions& options);

}  // namespace kvpool::cli
