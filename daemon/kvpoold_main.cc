// kvpoold: one kvpool pool per machine, shared by many processes.
//   kvpoold --config /etc/kvpool/kvpoold.toml
// SIGTERM or SIGINT: stop accepting, finish what was accepted, flush, exit 0.
// SIGHUP: measure device bandwidths again (Pool::ReprobeBandwidths).
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <thread>

#include "daemon.h"
#include "util/page_backing.h"

namespace {

using kvpool::daemon::Daemon;

// Blocks the signals kvpoold handles in every thread it will start.
sigset_t BlockHandledSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

void HandleSignals(sigset_t set, Daemon& daemon) {
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (sig == SIGHUP) {
      kvpool::Status s = daemon.Reprobe();
      std::fprintf(stderr, "kvpoold: SIGHUP: bandwidths re-probed: %s\n", s.ToString().c_str());
      continue;
    }
    std::fprintf(stderr, "kvpoold: %s: finishing accepted requests, then exiting\n", strsignal(sig));
    daemon.Stop();
    return;
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kvpoold: one kvpool pool per machine, shared by many processes (docs/daemon.md)"};
  std::string config;
  std::string socket;
  std::string metrics;
  app.add_option("-c,--config", config, "configuration: the pool and a [daemon] table (TOML)")->required();
  app.add_option("--socket", socket, "override daemon.socket");
  app.add_option("--metrics", metrics, "override daemon.metrics (127.0.0.1:PORT, port 0 picks one)");
  CLI11_PARSE(app, argc, argv);

  sigset_t handled = BlockHandledSignals();
  auto options = kvpool::daemon::LoadDaemonOptions(config);
  if (!options.ok()) {
    std::fprintf(stderr, "kvpoold: %s\n", options.status().ToString().c_str());
    return 2;
  }
  if (!socket.empty()) options->socket_path = socket;
  if (!metrics.empty()) options->metrics_address = metrics;
  auto daemon = Daemon::Open(std::move(*options));
  if (!daemon.ok()) {
    std::fprintf(stderr, "kvpoold: %s\n", daemon.status().ToString().c_str());
    return 1;
  }
  Daemon& d = **daemon;
  const kvpool::PoolStats stats = d.pool().Stats();
  std::fprintf(stderr, "kvpoold: serving %zu devices, %llu chunks recovered, on %s", stats.devices.size(),
               static_cast<unsigned long long>(stats.recovered_chunks), d.options().socket_path.c_str());
  if (d.metrics_port() > 0) std::fprintf(stderr, ", metrics on port %d", d.metrics_port());
  std::fprintf(stderr, "\n");
  if (const std::string shmem = kvpool::ShmemHugePagesSetting(); shmem == "never" || shmem == "deny") {
    std::fprintf(stderr,
                 "kvpoold: transparent_hugepage/shmem_enabled is %s: clients' shared regions get 4 KiB pages "
                 "unless they ask for hugetlb pages, and direct reads into 4 KiB pages ran at about half speed "
                 "on a VM; set it to advise (docs/daemon.md, \"Shared-region pages\")\n",
                 shmem.c_str());
  }
  std::thread signals([&] { HandleSignals(handled, d); });
  d.Run();
  signals.join();
  daemon->reset();  // closes the devices: everything accepted is on them
  std::fprintf(stderr, "kvpoold: stopped\n");
  return 0;
}
