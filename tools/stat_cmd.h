// kvpool stat: the live per-device and per-tenant numbers of a kvpoold.
#pragma once

#include <string>

namespace kvpool::cli {

struct StatOptions {
  std::string socket = "/run/kvpool/kvpoold.sock";
  bool json = false;   // print the daemon's JSON as it is
  int timeout_ms = 5000;
};

// Exit status: 0, or 1 when the daemon cannot be reached (the error names it).
int RunStat(const StatOptions& options);

}  // namespace kvpool::cli
