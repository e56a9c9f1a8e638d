// What backs a mapping: how many of its bytes lie in 2 MiB (or larger)
// pages. On a VM a direct read into 4 KiB pages moves one DMA segment per
// page (a 1 MiB read in 4 KiB pages exceeds virtio-blk's 254 segments and is
// split), and on this project's VMs it read about half as fast as into huge
// pages (docs/daemon.md, "Shared-region pages").
#pragma once

#include <cstdint>
#include <string>

namespace kvpool {

// Bytes of the mapping that holds `address` which the kernel maps with huge
// pages: hugetlb pages (Shared_Hugetlb + Private_Hugetlb) and transparent
// huge pages of anonymous or shared memory (AnonHugePages, ShmemPmdMapped,
// FilePmdMapped), from /proc/self/smaps. 0 when no mapping holds `address`
// or smaps cannot be read.
uint64_t HugePageBytesMapped(const void* address);

// The kernel's policy for transparent huge pages of shared memory (memfds,
// kvpoold's shared regions): the selected word of
// /sys/kernel/mm/transparent_hugepage/shmem_enabled ("never", "advise",
// "within_size", "always", "deny", "force"), or "unknown".
std::string ShmemHugePagesSetting();

// Free pages of the reserved hugetlb pool of the default size
// (HugePages_Free in /proc/meminfo); 0 when it cannot be read.
uint64_t FreeHugePages();

}  // namespace kvpool
