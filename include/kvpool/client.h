// kvpool/client.h: a Pool that lives in kvpoold, shared by many processes.
//
// kvpoold (docs/daemon.md) owns the devices of one pool. A ClientPool talks to
// it over a Unix socket and moves segment data through one shared-memory
// region per connection (a memfd the daemon maps). Buffers allocated with
// AllocateShared are read and written by the daemon's devices directly, with
// no copy on either side; any other buffer is staged through the region with
// one memcpy per segment (counted in ClientStats::staged_bytes).
//
//   kvpool::ClientOptions co;
//   co.address = "unix:/run/kvpool/kvpoold.sock";
//   auto pool = kvpool::ClientPool::Connect(co);      // or OpenPool(target)
//   auto buf = (*pool)->AllocateShared(bytes);          // zero-copy memory
//
// The daemon enforces the tenant: it checks the process's uid against the
// tenant's allow-list, keeps the tenant's chunks apart from every other
// tenant's (keys are mixed with the tenant before they reach the pool) and
// holds the tenant to its byte quota.
//
// Failure contract: every call returns within ClientOptions::timeout_ms when
// the daemon stops answering, with IOError naming the address. A lost
// connection fails the calls in flight; the next call reconnects (when
// `reconnect`), so a restarted daemon is picked up without the caller's help.
//
// Thread-safety: as Pool, every method may be called from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <kvpool/pool.h>

namespace kvpool {

// The pages of a connection's shared region. The daemon's devices read
// into it directly; on a VM a direct read into 4 KiB pages moves one DMA
// segment per page and read about half as fast as into 2 MiB pages on this
// project's VMs (docs/daemon.md, "Shared-region pages").
enum class RegionPages {
  // Shared memory advised for transparent huge pages (MADV_HUGEPAGE): 2 MiB
  // pages where /sys/kernel/mm/transparent_hugepage/shmem_enabled allows
  // them (advise, within_size, always), 4 KiB pages otherwise.
  kTransparent,
  // 2 MiB hugetlb pages from the reserved pool (vm.nr_hugepages); falls back
  // to kTransparent, with a warning, when not enough of them are free. The
  // pages stay taken while the connection lives.
  kHugetlb,
  // 4 KiB pages, advised against huge pages.
  kSmall,
};

struct ClientOptions {
  // "unix:/path/to/socket" or a plain socket path. Required.
  std::string address;
  // Tenant configured in the daemon. Default: "default".
  std::string tenant = "default";
  // Bytes of this connection's shared region (rounded up to 2 MiB). Bounds
  // AllocateShared and the staging of non-shared buffers; a request larger
  // than the free staging space is split into pieces that fit. Default: 256 MiB.
  uint64_t shared_bytes = 256ull << 20;
  // What backs the shared region. Default: kTransparent.
  RegionPages region_pages = RegionPages::kTransparent;
  // Longest wait for the daemon: to connect, for a reply, for a retrieval or
  // an offload to make progress. Default: 10000.
  uint32_t timeout_ms = 10000;
  // Reconnect on the next call after the connection was lost. Default: true.
  bool reconnect = true;
};

// Counters of the client side of the connection.
struct ClientStats {
  uint64_t requests = 0;
  uint64_t zero_copy_bytes = 0;  // moved straight between devices and shared buffers
  uint64_t staged_bytes = 0;     // copied through the staging area (non-shared buffers)
  uint64_t connects = 0;         // successful connections, the first included
  uint64_t disconnects = 0;      // connections lost (daemon gone, timeout, protocol error)
  uint64_t timeouts = 0;
  // The current shared region: its bytes, and how many of them the kernel
  // backed with huge pages when it was made (see RegionPages).
  uint64_t region_bytes = 0;
  uint64_t region_huge_bytes = 0;
};

// Memory inside a ClientPool's shared region. Move-only; the memory returns
// to the region when the buffer is destroyed. Page-aligned, so O_DIRECT
// devices read into it directly. It stays valid after the connection is lost.
class SharedBuffer {
 public:
  struct Lease;
  SharedBuffer() = default;
  explicit SharedBuffer(std::shared_ptr<Lease> lease);
  SharedBuffer(SharedBuffer&&) noexcept = default;
  SharedBuffer& operator=(SharedBuffer&&) noexcept = default;
  ~SharedBuffer();

  std::byte* data() const;
  size_t size() const;

 private:
  std::shared_ptr<Lease> lease_;
};

class ClientPool : public Pool {
 public:
  // Connects and registers this process with the daemon. Errors: InvalidArgument
  // (options), IOError (no daemon at the address, or it did not answer in
  // time), NotFound (no such tenant) or InvalidArgument naming the uid when
  // the daemon refused this process.
  static Result<std::unique_ptr<ClientPool>> Connect(const ClientOptions& options);

  // `bytes` of shared memory, page-aligned. Errors: NoSpace when the region
  // has no free run that large (see ClientOptions::shared_bytes).
  virtual Result<SharedBuffer> AllocateShared(size_t bytes) = 0;

  // The daemon's whole view as JSON: its pool's PoolStats, every tenant's
  // usage, quota and counters, and the connected clients (docs/daemon.md).
  virtual Result<std::string> DaemonStatsJson() = 0;

  virtual ClientStats client_stats() const = 0;
};

// Opens `target`: "unix:PATH" connects to kvpoold at PATH (with `client` for
// the other fields); anything else is a TOML configuration file opened
// in-process with Pool::Open.
Result<std::unique_ptr<Pool>> OpenPool(std::string_view target, const ClientOptions& client = {});

}  // namespace kvpool
