#include "tier/spdk/spdk_env.h"

#include <sched.h>
#include <signal.h>
#include <spdk/env.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <mutex>
#include <string>

#include "util/log.h"

namespace kvpool {
namespace {

// libspdk_env_dpdk installs a SIGBUS handler from a library constructor (for
// PCIe hot removal). In a process that never maps a PCIe BAR it would turn a
// genuine SIGBUS into a busy loop, so kvpool puts the default back at load
// and reinstalls SPDK's handler only when PCI is brought up. Shared library
// constructors run before this initializer.
struct sigaction g_spdk_sigbus = [] {
  struct sigaction spdk {};
  sigaction(SIGBUS, nullptr, &spdk);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigaction(SIGBUS, &dfl, nullptr);
  return spdk;
}();

bool EnvFlag(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && v[0] != '\0' && v[0] != '0';
}

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && std::atoi(v) > 0 ? std::atoi(v) : fallback;
}

// Free 2 MiB hugepages and a hugetlbfs mount to put them in.
bool HugepagesUsable() {
  std::ifstream meminfo("/proc/meminfo");
  long free_pages = 0;
  for (std::string line; std::getline(meminfo, line);) {
    if (line.rfind("HugePages_Free:", 0) == 0) free_pages = std::atol(line.c_str() + 15);
  }
  std::ifstream mounts("/proc/mounts");
  bool mounted = false;
  for (std::string line; std::getline(mounts, line);) {
    mounted |= line.find(" hugetlbfs ") != std::string::npos;
  }
  return free_pages > 0 && mounted;
}

Status Init(bool need_pci, SpdkEnvInfo* info) {
  info->pci = need_pci || EnvFlag("KVPOOL_SPDK_PCI");
  info->hugepages = !EnvFlag("KVPOOL_SPDK_NO_HUGE") && HugepagesUsable();
  info->mem_mb =
      info->hugepages ? EnvInt("KVPOOL_SPDK_MEM_MB", -1) : EnvInt("KVPOOL_SPDK_MEM_MB", 1024);
  spdk_env_opts opts{};
  opts.opts_size = sizeof(opts);
  spdk_env_opts_init(&opts);
  opts.name = "kvpool";
  opts.no_pci = !info->pci;
  opts.no_huge = !info->hugepages;
  opts.mem_size = info->mem_mb;
  cpu_set_t affinity;
  const bool saved = sched_getaffinity(0, sizeof(affinity), &affinity) == 0;
  const int rc = spdk_env_init(&opts);
  if (saved) sched_setaffinity(0, sizeof(affinity), &affinity);  // EAL pinned us to core 0
  if (rc != 0) {
    return Status::IOError("SPDK: spdk_env_init failed (" + info->Describe() +
                           "; see the EAL messages above; docs/spdk.md, \"Huge pages\")");
  }
  if (info->pci && g_spdk_sigbus.sa_handler != SIG_DFL) sigaction(SIGBUS, &g_spdk_sigbus, nullptr);
  // Without shared config (shm_id < 0) DPDK keeps nothing in its runtime
  // directory but would leave it behind; rmdir removes it only if empty.
  const std::string prefix = "/dpdk/spdk_pid" + std::to_string(getpid());
  rmdir(("/var/run" + prefix).c_str());
  if (const char* xdg = std::getenv("XDG_RUNTIME_DIR")) rmdir((xdg + prefix).c_str());
  log::Info("SPDK environment up: " + info->Describe());
  return Status::OK();
}

}  // namespace

std::string SpdkEnvInfo::Describe() const {
  std::string s = pci ? "pci=on" : "pci=off";
  s += hugepages ? " memory=hugepages" : " memory=no_huge";
  s += mem_mb > 0 ? "(" + std::to_string(mem_mb) + " MiB)" : "(on demand)";
  return s;
}

Result<SpdkEnvInfo> EnsureSpdkEnv(bool need_pci) {
  static std::mutex mu;
  static bool tried = false;
  static Status status;
  static SpdkEnvInfo info;
  std::lock_guard<std::mutex> lock(mu);
  if (!tried) {
    tried = true;
    status = Init(need_pci, &info);
  }
  if (!status.ok()) return status;
  if (need_pci && !info.pci) {
    return Status::InvalidArgument(
        "SPDK: the environment of this process came up without PCI (its first SPDK device "
        "was not PCIe); list PCIe SPDK devices first or set KVPOOL_SPDK_PCI=1");
  }
  return info;
}

}  // namespace kvpool
