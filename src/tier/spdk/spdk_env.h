// SPDK's environment (DPDK's EAL: DMA-able memory, PCI access) is
// process-wide. kvpool initializes it once, lazily, on the first SPDK device
// open (or `kvpool probe`), from any thread: the first caller initializes it
// under a mutex, later callers get the same outcome (a failure is
// remembered). It is never torn down: DPDK cannot be initialized twice in a
// process.
//
// Choices, made once per process:
//   PCI       on when the first SPDK device is PCIe (or KVPOOL_SPDK_PCI=1);
//             fabrics-only processes run with no_pci and touch no device.
//   memory    2 MiB hugepages when some are free and hugetlbfs is mounted,
//             otherwise no_huge with KVPOOL_SPDK_MEM_MB (default 1024) MiB
//             of ordinary memory (enough for NVMe/TCP; PCIe needs
//             hugepages). KVPOOL_SPDK_NO_HUGE=1 forces no_huge.
// The initializing thread keeps its CPU affinity (DPDK would pin it).
//
// Never fork a process that has initialized SPDK and use SPDK in the child.
#pragma once

#include <string>

#include <kvpool/result.h>

namespace kvpool {

struct SpdkEnvInfo {
  bool pci = false;
  bool hugepages = false;
  int mem_mb = -1;  // -1: grows on demand (hugepages)
  std::string Describe() const;
};

// Initializes the environment on first use (see above). `need_pci`: the
// caller is a PCIe device. Errors: IOError (spdk_env_init failed; the
// message says which memory mode was tried), InvalidArgument (a PCIe device
// after the environment came up without PCI).
Result<SpdkEnvInfo> EnsureSpdkEnv(bool need_pci);

}  // namespace kvpool
