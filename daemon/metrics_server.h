// kvpoold's /metrics: Prometheus text on a loopback HTTP port.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include <kvpool/pool.h>
#include <kvpool/result.h>

namespace httplib {
class Server;
}

namespace kvpool::daemon {

// The daemon's families: the pool's (kvpool_pool_*), and kvpoold_* for the
// clients and, labelled by tenant, every tenant's usage and counters.
// `stats` is Daemon::StatsJson(nullptr).
std::string DaemonMetricsText(const nlohmann::json& stats, const PoolStats& pool);

class MetricsServer {
 public:
  // Serves GET /metrics on `address` ("127.0.0.1:PORT", "localhost:PORT" or
  // "[::1]:PORT"; port 0 picks one). InvalidArgument for a non-loopback host.
  static Result<std::unique_ptr<MetricsServer>> Start(const std::string& address,
                                                      std::function<std::string()> text);
  ~MetricsServer();
  int port() const { return port_; }

 private:
  MetricsServer() = default;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace kvpool::daemon
