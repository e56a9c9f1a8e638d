// One attached NVMe controller and its namespace 1, shared (shared_ptr) by
// the SPDK target and every I/O queue made on it, so that it is detached only
// after the last qpair is freed.
//
// Health: a thread polls the admin queue every 100 ms (keep-alive for
// fabrics, asynchronous events) and marks the controller failed when the
// admin queue or the transport fails; an I/O queue marks it failed when a
// command times out or its qpair disconnects. A failed controller fails every
// later transfer at once (IOError), so nothing waits on a dead device.
//
// Metadata transfers (superblock, checkpoints) use one extra qpair under a
// mutex, through a DMA-able bounce buffer. Timeouts: KVPOOL_SPDK_TIMEOUT_MS
// (default 10000) per command, read once per process.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <kvpool/result.h>

#include "tier/spdk/spdk_env.h"

struct spdk_nvme_ctrlr;
struct spdk_nvme_ns;
struct spdk_nvme_qpair;

namespace kvpool {

// What the data-path queues spent, summed over all of them.
struct SpdkPollStats {
  std::atomic<uint64_t> polls{0};        // spdk_nvme_qpair_process_completions calls
  std::atomic<uint64_t> empty_polls{0};  // calls that completed nothing
  std::atomic<uint64_t> wait_ns{0};      // wall time inside Run/RunStream
  std::atomic<uint64_t> cpu_ns{0};       // thread CPU time inside Run/RunStream
};

class SpdkController {
 public:
  // Parses `transport` (spdk_nvme_transport_id_parse), brings up the SPDK
  // environment and attaches the controller. `what`: "device 'name'".
  // Errors: InvalidArgument (not a transport ID; fabrics without subnqn; no
  // active namespace 1; a sector size that does not divide 4096 or extended
  // LBAs), IOError (attach failed: the message names the transport ID).
  static Result<std::shared_ptr<SpdkController>> Attach(const std::string& transport,
                                                        const std::string& what);
  ~SpdkController();  // stops the admin poller, frees the metadata qpair, detaches

  SpdkController(const SpdkController&) = delete;
  SpdkController& operator=(const SpdkController&) = delete;

  spdk_nvme_ctrlr* ctrlr() const { return ctrlr_; }
  spdk_nvme_ns* ns() const { return ns_; }
  const std::string& transport() const { return transport_; }
  const std::string& what() const { return what_; }
  uint64_t size_bytes() const { return size_bytes_; }
  uint32_t sector_bytes() const { return sector_bytes_; }
  uint32_t max_transfer_bytes() const { return max_transfer_bytes_; }
  bool pcie() const { return pcie_; }
  bool tcp() const { return tcp_; }
  const SpdkEnvInfo& env() const { return env_; }
  static uint64_t TimeoutNs();

  // A new I/O qpair able to carry `depth` transfers of `bytes` each (split
  // into max_transfer_bytes commands by the driver). Null when failed.
  spdk_nvme_qpair* NewQpair(uint32_t depth, size_t bytes);

  bool failed() const { return failed_.load(std::memory_order_acquire); }
  // Marks the controller failed (first reason wins, logged once).
  void Fail(const std::string& reason);
  std::string failure() const;

  // Synchronous metadata transfer of `bytes` at byte `offset` (multiples of
  // 4096) or, for kFlush, an NVMe Flush (nothing when the controller has no
  // volatile write cache). Errors start with `what`.
  enum class Op { kRead, kWrite, kFlush };
  Status Transfer(Op op, std::byte* buffer, size_t bytes, uint64_t offset, const std::string& what);

  SpdkPollStats& stats() { return stats_; }
  const SpdkPollStats& stats() const { return stats_; }

 private:
  SpdkController() = default;
  Status Init(const std::string& transport, const std::string& what);
  void AdminLoop();
  // One command on the metadata qpair, waited for; -errno or 0.
  int RunMeta(Op op, void* dma, uint64_t lba, uint32_t lbas);

  spdk_nvme_ctrlr* ctrlr_ = nullptr;
  spdk_nvme_ns* ns_ = nullptr;
  std::string transport_;
  std::string what_;
  SpdkEnvInfo env_;
  uint64_t size_bytes_ = 0;
  uint32_t sector_bytes_ = 0;
  uint32_t max_transfer_bytes_ = 0;
  bool pcie_ = false;
  bool tcp_ = false;
  bool write_cache_ = false;

  std::mutex meta_mu_;
  spdk_nvme_qpair* meta_qpair_ = nullptr;  // guarded by meta_mu_
  std::byte* meta_dma_ = nullptr;          // guarded by meta_mu_, kMetaChunk bytes

  std::atomic<bool> failed_{false};
  mutable std::mutex fail_mu_;
  std::string failure_;  // guarded by fail_mu_

  std::mutex admin_mu_;
  std::condition_variable admin_cv_;
  bool stop_ = false;  // guarded by admin_mu_
  std::thread admin_thread_;

  SpdkPollStats stats_;
};

}  // namespace kvpool
