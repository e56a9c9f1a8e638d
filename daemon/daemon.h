// kvpoold: the daemon that owns one pool's devices and serves it to the
// processes of a machine (docs/daemon.md).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <list>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include <kvpool/pool.h>

#include "daemon_options.h"
#include "ipc/unix_socket.h"
#include "session.h"
#include "tenants.h"

namespace kvpool::daemon {

class MetricsServer;

// Pool requests pass the gate for as long as they are in flight; Pause()
// waits until none is and holds new ones back until Resume().
class IoGate {
 public:
  void Enter();
  void Leave();
  void Pause();
  void Resume();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t active_ = 0;  // guarded by mu_
  bool paused_ = false;  // guarded by mu_
};

class Daemon {
 public:
  // Opens the pool (recovering what its devices hold), binds the socket and
  // the metrics port. Errors name the device, path or address.
  static Result<std::unique_ptr<Daemon>> Open(DaemonOptions options);
  ~Daemon();

  // Accepts clients until Stop(); then waits for every session to finish
  // its accepted requests, flushes the pool and returns.
  void Run();
  // Asks Run() to return. Any thread; async-signal context is not allowed.
  void Stop();
  // Measures device bandwidths again and uses them for placement (SIGHUP).
  Status Reprobe();

  Pool& pool() { return *pool_; }
  TenantRegistry& tenants() { return *tenants_; }
  const DaemonOptions& options() const { return options_; }
  IoGate& io_gate() { return gate_; }
  bool IsAdmin(const ipc::PeerCred& peer) const;
  // The pool's stats, the clients and every tenant (or only `only`).
  nlohmann::json StatsJson(const Tenant* only);
  // Prometheus text of StatsJson(nullptr)'s numbers.
  std::string MetricsText();
  // The pool's stats, never while a re-probe rewrites the bandwidths.
  kvpool::PoolStats CurrentPoolStats();
  // The bound metrics port; 0 when metrics are off.
  int metrics_port() const;

 private:
  explicit Daemon(DaemonOptions options);
  void Admit(ipc::Fd sock);
  void Reap(bool all);

  DaemonOptions options_;
  std::unique_ptr<Pool> pool_;
  std::unique_ptr<TenantRegistry> tenants_;
  ipc::Fd listener_;
  std::unique_ptr<MetricsServer> metrics_;
  IoGate gate_;
  std::shared_mutex probe_mu_;  // exclusive: Reprobe; shared: reading the pool's stats
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> next_session_{1};
  std::atomic<uint64_t> refused_clients_{0};
  std::atomic<uint64_t> reprobes_{0};          // SIGHUP re-probes that succeeded
  std::atomic<uint64_t> failed_reprobes_{0};
  std::mutex mu_;
  std::list<std::unique_ptr<Session>> sessions_;  // guarded by mu_
};

}  // namespace kvpool::daemon
