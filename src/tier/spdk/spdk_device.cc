#include "tier/spdk/spdk_device.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>

#include "tier/spdk/spdk_controller.h"
#include "tier/spdk/spdk_queue.h"
#include "util/aligned_buffer.h"

namespace kvpool {
namespace {

constexpr size_t kEmptyScanBytes = 1u << 20;

std::string Seconds(uint64_t ns) {
  char s[32];
  std::snprintf(s, sizeof(s), "%.3f s", double(ns) / 1e9);
  return s;
}

// Namespace 1 of an attached controller as the home of an extent.
class SpdkTarget final : public BlockTarget {
 public:
  explicit SpdkTarget(std::shared_ptr<SpdkController> c) : ctrl_(std::move(c)) {}

  Status ReadAt(std::byte* buffer, size_t bytes, uint64_t offset,
                const std::string& what) override {
    return ctrl_->Transfer(SpdkController::Op::kRead, buffer, bytes, offset, what);
  }
  Status WriteAt(const std::byte* buffer, size_t bytes, uint64_t offset,
                 const std::string& what) override {
    return ctrl_->Transfer(SpdkController::Op::kWrite, const_cast<std::byte*>(buffer), bytes,
                           offset, what);
  }
  Status Flush(const std::string& what) override {
    return ctrl_->Transfer(SpdkController::Op::kFlush, nullptr, 0, 0, what);
  }
  uint64_t size() const override { return ctrl_->size_bytes(); }
  const std::string& location() const override { return ctrl_->transport(); }

  Status EnsureSize(uint64_t bytes) override {
    if (size() >= bytes) return Status::OK();
    return Status::NoSpace(ctrl_->what() + ": namespace 1 of '" + location() + "' has " +
                           std::to_string(size()) + " bytes, the extent needs " +
                           std::to_string(bytes) + " (lower capacity_bytes)");
  }

  // Like a block device: only the first MiB is read.
  Result<bool> LooksEmpty() override {
    AlignedBuffer buf(std::min<uint64_t>(kEmptyScanBytes, size()));
    KVP_RETURN_IF_ERROR(ReadAt(buf.data(), buf.size(), 0, ctrl_->what() + ": reading"));
    const std::byte* p = buf.data();
    return buf.size() == 0 || (p[0] == std::byte{0} && std::memcmp(p, p + 1, buf.size() - 1) == 0);
  }

  Result<std::unique_ptr<RawQueue>> NewEngine(uint32_t depth, size_t buffer_bytes) override {
    queues_.fetch_add(1, std::memory_order_relaxed);
    return NewSpdkQueue(ctrl_, depth, buffer_bytes);
  }

  std::string Describe() const override {
    const SpdkPollStats& s = ctrl_->stats();
    const uint64_t wait = s.wait_ns.load(), cpu = s.cpu_ns.load();
    const uint64_t polls = s.polls.load(), empty = s.empty_polls.load();
    std::string d = std::string("engine=spdk user-space NVMe (") +
                    (ctrl_->pcie() ? "PCIe" : "fabrics") +
                    ") dma-buffers=" + (ctrl_->env().hugepages ? "hugepages" : "no_huge") +
                    " sector=" + std::to_string(ctrl_->sector_bytes()) +
                    " max-transfer=" + std::to_string(ctrl_->max_transfer_bytes() / 1024) +
                    "KiB queues=" + std::to_string(queues_.load()) + " polling: cpu " +
                    Seconds(cpu) + " over " + Seconds(wait) + " of I/O wait";
    if (wait > 0) d += " (" + std::to_string(cpu * 100 / wait) + "%)";
    d += ", " + std::to_string(polls) + " polls";
    if (polls > 0) d += " (" + std::to_string(empty * 100 / polls) + "% empty)";
    d += ctrl_->failed() ? " state=failed(" + ctrl_->failure() + ")" : " state=ok";
    return d + " transport=" + location();
  }

 private:
  std::shared_ptr<SpdkController> ctrl_;
  std::atomic<uint32_t> queues_{0};
};

}  // namespace

Result<std::unique_ptr<BlockTarget>> OpenSpdkTarget(const DeviceOptions& options) {
  KVP_ASSIGN_OR_RETURN(std::shared_ptr<SpdkController> c,
                       SpdkController::Attach(options.transport, "device '" + options.name + "'"));
  return std::unique_ptr<BlockTarget>(new SpdkTarget(std::move(c)));
}

Result<std::unique_ptr<Device>> OpenSpdkDevice(const DeviceOptions& options,
                                               uint32_t segment_payload_bytes,
                                               const ChunkKey& pool_id) {
  return OpenSpdkDevice(options, segment_payload_bytes, pool_id, ExtentTuning{});
}

Result<std::unique_ptr<Device>> OpenSpdkDevice(const DeviceOptions& options,
                                               uint32_t segment_payload_bytes,
                                               const ChunkKey& pool_id,
                                               const ExtentTuning& tuning) {
  if (options.transport.empty()) {
    return Status::InvalidArgument("device '" + options.name +
                                   "': transport (an SPDK transport ID) is required");
  }
  KVP_ASSIGN_OR_RETURN(ExtentPlan plan, PlanExtent(options, segment_payload_bytes));
  KVP_ASSIGN_OR_RETURN(std::unique_ptr<BlockTarget> target, OpenSpdkTarget(options));
  KVP_RETURN_IF_ERROR(target->EnsureSize(plan.layout.total_bytes));  // before anything is written
  return OpenExtentOnTarget(options, plan, std::move(target), pool_id, tuning);
}

Result<std::string> ProbeSpdkEnv(bool pci) {
  KVP_ASSIGN_OR_RETURN(SpdkEnvInfo info, EnsureSpdkEnv(pci));
  return info.Describe();
}

}  // namespace kvpool
