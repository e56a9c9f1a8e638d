// kvpoold's configuration: one TOML file holding the pool (the format of
// docs/configuration.md) and a [daemon] table (docs/daemon.md).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include <kvpool/options.h>
#include <kvpool/result.h>

namespace kvpool::daemon {

struct TenantOptions {
  std::string name;          // what clients name in ClientOptions::tenant
  std::vector<uid_t> uids;   // peers allowed by uid ...
  std::vector<gid_t> gids;   // ... or by primary gid
  uint64_t quota_bytes = 0;  // bytes of chunks the tenant may hold; 0 = unlimited
};

struct DaemonOptions {
  PoolOptions pool;
  // The Unix socket clients connect to. Required.
  std::string socket_path;
  // Permissions of the socket file. Default: 0660.
  unsigned socket_mode = 0660;
  // "127.0.0.1:PORT" serves Prometheus text at /metrics; "" = off. Only
  // loopback addresses are accepted. Default: "".
  std::string metrics_address;
  // Most clients connected at once; more are refused. Default: 64.
  uint32_t max_clients = 64;
  // Largest shared region a client may register. Default: 4 GiB.
  uint64_t max_region_bytes = 4ull << 30;
  // Requests of one client in flight; its further requests wait. Default: 64.
  uint32_t max_inflight = 64;
  // Uids that may read every tenant's stats (the daemon's own uid always may).
  // Default: [0].
  std::vector<uid_t> admin_uids = {0};
  // Default: one tenant "default" that allows the daemon's own uid, unlimited.
  std::vector<TenantOptions> tenants;

  // OK, or InvalidArgument naming the field ("daemon.tenant[1].name ...").
  Status Validate() const;
};

// Parses a kvpoold configuration; `origin` names the source in errors.
Result<DaemonOptions> ParseDaemonOptions(std::string_view toml_text, std::string_view origin);
Result<DaemonOptions> LoadDaemonOptions(const std::string& path);

}  // namespace kvpool::daemon
