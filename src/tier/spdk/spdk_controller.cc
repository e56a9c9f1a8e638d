#include "tier/spdk/spdk_controller.h"

#include <sched.h>
#include <spdk/env.h>
#include <spdk/nvme.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "util/errno_status.h"
#include "util/log.h"

namespace kvpool {
namespace {

constexpr size_t kMetaChunk = 1u << 20;  // metadata bounce buffer
constexpr auto kAdminPeriod = std::chrono::milliseconds(100);

uint64_t NowNs() {
  return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::steady_clock::now().time_since_epoch())
                      .count());
}

struct MetaWait {
  bool done = false;
  bool error = false;
  std::string status;
};

void OnMetaDone(void* arg, const spdk_nvme_cpl* cpl) {
  auto* w = static_cast<MetaWait*>(arg);
  w->done = true;
  w->error = spdk_nvme_cpl_is_error(cpl);
  if (w->error) w->status = spdk_nvme_cpl_get_status_string(&cpl->status);
}

}  // namespace

uint64_t SpdkController::TimeoutNs() {
  static const uint64_t ns = [] {
    const char* v = std::getenv("KVPOOL_SPDK_TIMEOUT_MS");
    long ms = v != nullptr ? std::atol(v) : 0;
    return uint64_t(ms > 0 ? ms : 10000) * 1000000ull;
  }();
  return ns;
}

Result<std::shared_ptr<SpdkController>> SpdkController::Attach(const std::string& transport,
                                                               const std::string& what) {
  std::shared_ptr<SpdkController> c(new SpdkController);
  KVP_RETURN_IF_ERROR(c->Init(transport, what));
  return c;
}

Status SpdkController::Init(const std::string& transport, const std::string& what) {
  transport_ = transport;
  what_ = what;
  spdk_nvme_transport_id trid{};
  if (spdk_nvme_transport_id_parse(&trid, transport.c_str()) != 0) {
    return Status::InvalidArgument(
        what + ": transport '" + transport +
        "' is not an SPDK transport ID (e.g. 'trtype:PCIe traddr:0000:01:00.0' or 'trtype:TCP "
        "adrfam:IPv4 traddr:127.0.0.1 trsvcid:4420 subnqn:nqn.2016-06.io.spdk:cnode1')");
  }
  pcie_ = trid.trtype == SPDK_NVME_TRANSPORT_PCIE;
  tcp_ = trid.trtype == SPDK_NVME_TRANSPORT_TCP;
  if (!pcie_ && trid.subnqn[0] == '\0') {
    return Status::InvalidArgument(what + ": transport '" + transport +
                                   "' names no subnqn (the NVMe-oF subsystem to attach)");
  }
  KVP_ASSIGN_OR_RETURN(env_, EnsureSpdkEnv(pcie_));
  spdk_nvme_ctrlr_opts opts{};
  spdk_nvme_ctrlr_get_default_ctrlr_opts(&opts, sizeof(opts));
  ctrlr_ = spdk_nvme_connect(&trid, &opts, sizeof(opts));
  if (ctrlr_ == nullptr) {
    return Status::IOError(what + ": cannot attach the NVMe controller at '" + transport +
                           "' (is the target listening / the drive bound to SPDK? see "
                           "docs/spdk.md)");
  }
  ns_ = spdk_nvme_ctrlr_get_ns(ctrlr_, 1);
  if (ns_ == nullptr || !spdk_nvme_ns_is_active(ns_)) {
    return Status::InvalidArgument(what + ": '" + transport + "' has no active namespace 1");
  }
  sector_bytes_ = spdk_nvme_ns_get_sector_size(ns_);
  if (sector_bytes_ == 0 || 4096 % sector_bytes_ != 0 || spdk_nvme_ns_supports_extended_lba(ns_)) {
    return Status::InvalidArgument(what + ": namespace 1 of '" + transport + "' has " +
                                   std::to_string(sector_bytes_) +
                                   "-byte sectors or extended LBAs; kvpool needs 512 or 4096-byte "
                                   "sectors without interleaved metadata");
  }
  size_bytes_ = spdk_nvme_ns_get_size(ns_);
  max_transfer_bytes_ = std::max<uint32_t>(4096, spdk_nvme_ns_get_max_io_xfer_size(ns_));
  write_cache_ = spdk_nvme_ctrlr_get_data(ctrlr_)->vwc.present != 0;
  meta_qpair_ = spdk_nvme_ctrlr_alloc_io_qpair(ctrlr_, nullptr, 0);
  meta_dma_ = static_cast<std::byte*>(spdk_dma_zmalloc(kMetaChunk, 4096, nullptr));
  if (meta_qpair_ == nullptr || meta_dma_ == nullptr) {
    return Status::IOError(what + ": cannot allocate a qpair or " + std::to_string(kMetaChunk) +
                           " bytes of DMA memory on '" + transport + "'");
  }
  admin_thread_ = std::thread([this] { AdminLoop(); });
  return Status::OK();
}

SpdkController::~SpdkController() {
  {
    std::lock_guard<std::mutex> lock(admin_mu_);
    stop_ = true;
  }
  admin_cv_.notify_all();
  if (admin_thread_.joinable()) admin_thread_.join();
  if (meta_qpair_ != nullptr) spdk_nvme_ctrlr_free_io_qpair(meta_qpair_);
  if (meta_dma_ != nullptr) spdk_dma_free(meta_dma_);
  if (ctrlr_ == nullptr) return;
  // A dead or hung controller would hold detach for its shutdown timeout
  // (>= 10 s): drop the admin connection first so that detach skips it.
  if (failed()) spdk_nvme_ctrlr_disconnect(ctrlr_);
  spdk_nvme_detach(ctrlr_);
}

void SpdkController::AdminLoop() {
  std::unique_lock<std::mutex> lock(admin_mu_);
  while (!admin_cv_.wait_for(lock, kAdminPeriod, [&] { return stop_; })) {
    if (failed()) continue;
    lock.unlock();
    int32_t rc = spdk_nvme_ctrlr_process_admin_completions(ctrlr_);
    if (rc < 0) {
      Fail("the admin queue failed (" + std::string(std::strerror(-rc)) +
           "): the controller disconnected");
    } else if (spdk_nvme_ctrlr_is_failed(ctrlr_)) {
      Fail("the driver marked the controller failed");
    }
    lock.lock();
  }
}

void SpdkController::Fail(const std::string& reason) {
  {
    std::lock_guard<std::mutex> lock(fail_mu_);
    if (!failure_.empty()) return;
    failure_ = reason;
  }
  failed_.store(true, std::memory_order_release);
  log::Error(what_ + ": NVMe controller at '" + transport_ + "' failed: " + reason +
             "; its reads miss and its writes fail from now on");
}

std::string SpdkController::failure() const {
  std::lock_guard<std::mutex> lock(fail_mu_);
  return failure_;
}

spdk_nvme_qpair* SpdkController::NewQpair(uint32_t depth, size_t bytes) {
  if (failed()) return nullptr;
  spdk_nvme_io_qpair_opts o{};
  spdk_nvme_ctrlr_get_default_io_qpair_opts(ctrlr_, &o, sizeof(o));
  const uint32_t commands = uint32_t((bytes + max_transfer_bytes_ - 1) / max_transfer_bytes_);
  o.io_queue_requests = std::max<uint32_t>(o.io_queue_requests, depth * (commands + 1) + 8);
  return spdk_nvme_ctrlr_alloc_io_qpair(ctrlr_, &o, sizeof(o));
}

int SpdkController::RunMeta(Op op, void* dma, uint64_t lba, uint32_t lbas) {
  if (failed() || meta_qpair_ == nullptr) return -EIO;
  MetaWait w;
  int rc = op == Op::kRead
               ? spdk_nvme_ns_cmd_read(ns_, meta_qpair_, dma, lba, lbas, OnMetaDone, &w, 0)
           : op == Op::kWrite
               ? spdk_nvme_ns_cmd_write(ns_, meta_qpair_, dma, lba, lbas, OnMetaDone, &w, 0)
               : spdk_nvme_ns_cmd_flush(ns_, meta_qpair_, OnMetaDone, &w);
  if (rc != 0) return rc;
  const uint64_t deadline = NowNs() + TimeoutNs();
  while (!w.done) {
    int32_t n = spdk_nvme_qpair_process_completions(meta_qpair_, 0);
    if (w.done) break;
    if (n < 0) {
      Fail("the metadata qpair disconnected (" + std::string(std::strerror(-n)) + ")");
    } else if (NowNs() > deadline) {
      Fail("a metadata command timed out after " + std::to_string(TimeoutNs() / 1000000) + " ms");
    }
    if (failed()) {
      // Free the qpair so that the command can never land in `dma` later.
      spdk_nvme_ctrlr_free_io_qpair(meta_qpair_);
      meta_qpair_ = nullptr;
      return -EIO;
    }
    if (n == 0) sched_yield();
  }
  if (w.error) log::Warn(what_ + ": metadata command failed: " + w.status);
  return w.error ? -EIO : 0;
}

Status SpdkController::Transfer(Op op, std::byte* buffer, size_t bytes, uint64_t offset,
                                const std::string& what) {
  std::lock_guard<std::mutex> lock(meta_mu_);
  auto error = [&](int rc, const char* verb, uint64_t at) {
    if (failed()) return Status::IOError(what + ": controller failed: " + failure());
    return ErrnoStatus(-rc, what + ": NVMe " + verb + " at byte " + std::to_string(at));
  };
  if (op == Op::kFlush) {
    if (!write_cache_) return Status::OK();  // completed writes are already durable
    int rc = RunMeta(op, nullptr, 0, 0);
    return rc == 0 ? Status::OK() : error(rc, "flush", 0);
  }
  for (size_t done = 0; done < bytes; done += kMetaChunk) {
    const size_t n = std::min(kMetaChunk, bytes - done);
    const uint64_t at = offset + done;
    if (op == Op::kWrite) std::memcpy(meta_dma_, buffer + done, n);
    int rc = RunMeta(op, meta_dma_, at / sector_bytes_, uint32_t(n / sector_bytes_));
    if (rc != 0) return error(rc, op == Op::kRead ? "read" : "write", at);
    if (op == Op::kRead) std::memcpy(buffer + done, meta_dma_, n);
  }
  return Status::OK();
}

}  // namespace kvpool
