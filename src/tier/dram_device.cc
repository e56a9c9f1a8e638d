#include "tier/dram_device.h"

#include <sched.h>
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <thread>

#include "config.h"
#include "util/aligned_buffer.h"
#include "util/checksum.h"
#include "util/errno_status.h"
#include "util/log.h"

#if KVPOOL_HAVE_NUMA
#include <numa.h>
#endif

namespace kvpool {
namespace {

constexpr size_t kHugePage = 2u << 20;

class DramQueue final : public IoQueue {
 public:
  DramQueue(std::byte* base, size_t slot_bytes) : base_(base), slot_bytes_(slot_bytes) {}

  void Execute(std::span<SegmentIo* const> ops) override {
    for (SegmentIo* op : ops) {
      std::byte* slot = base_ + static_cast<size_t>(op->slot) * slot_bytes_;
      if (op->kind == IoKind::kRead) {
        op->delivered_checksum = CopyWithChecksum(op->buffer, slot, op->length);
        op->delivered_checksum_known = true;
      } else {
        std::memcpy(slot, op->buffer, op->length);
      }
      op->status = Status::OK();
    }
  }

 private:
  std::byte* base_;
  size_t slot_bytes_;
};

class DramDevice final : public Device {
 public:
  DramDevice(DeviceOptions options, DeviceGeometry geometry, void* base, size_t map_bytes,
             std::string placement)
      : Device(std::move(options), geometry),
        base_(static_cast<std::byte*>(base)),
        map_bytes_(map_bytes),
        placement_(std::move(placement)) {}
  ~DramDevice() override { munmap(base_, map_bytes_); }

  Result<std::unique_ptr<IoQueue>> NewIoQueue() override {
    return std::unique_ptr<IoQueue>(new DramQueue(base_, geometry_.slot_payload_bytes));
  }

  std::string Describe() const override {
    return Device::Describe() + " " + placement_;
  }

 private:
  std::byte* base_;
  size_t map_bytes_;
  std::string placement_;
};

// Maps `bytes`, in hugetlb pages when asked and available. Sets `placement`.
void* MapRegion(const DeviceOptions& options, size_t bytes, std::string* placement) {
  if (options.huge_pages) {
    void* p = mmap(nullptr, RoundUp(bytes, kHugePage), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_NORESERVE, -1, 0);
    if (p != MAP_FAILED) {
      *placement = "hugetlb-2MiB";
      return p;
    }
    log::Warn("device '" + options.name +
              "': no 2 MiB huge pages reserved (vm.nr_hugepages); using transparent huge pages");
  }
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                 -1, 0);
  if (p == MAP_FAILED) return nullptr;
  madvise(p, bytes, MADV_HUGEPAGE);
  *placement = "4KiB+THP";
  return p;
}

Status BindToNode(const DeviceOptions& options, void* p, size_t bytes, std::string* placement) {
  if (options.numa_node < 0) return Status::OK();
#if KVPOOL_HAVE_NUMA
  if (numa_available() < 0 || options.numa_node > numa_max_node()) {
    return Status::InvalidArgument("device '" + options.name + "': numa_node " +
                                   std::to_string(options.numa_node) +
                                   " does not exist on this machine");
  }
  numa_tonode_memory(p, bytes, options.numa_node);
  *placement += " node" + std::to_string(options.numa_node);
  return Status::OK();
#else
  (void)p;
  (void)bytes;
  (void)placement;
  return Status::Unsupported("device '" + options.name +
                             "': numa_node set but kvpool was built without libnuma");
#endif
}

// CPUs this process may run on (its affinity mask), at least 1.
uint32_t UsableCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) {
    return static_cast<uint32_t>(CPU_COUNT(&set));
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace

void ResolveIoThreads(std::vector<DeviceOptions>& devices) {
  uint32_t dram_regions = 0;
  for (const DeviceOptions& d : devices) dram_regions += d.kind == DeviceKind::kDram ? 1 : 0;
  const uint32_t per_region =
      std::clamp<uint32_t>(UsableCpus() / std::max(1u, dram_regions), 1, kMaxAutoDramThreads);
  for (DeviceOptions& d : devices) {
    if (d.io_threads == 0) d.io_threads = d.kind == DeviceKind::kDram ? per_region : 1;
  }
}

std::vector<DeviceOptions> ExpandNumaRegions(const DeviceOptions& options) {
  if (options.kind != DeviceKind::kDram || options.numa_node != kEachNumaNode) return {options};
  int nodes = 0;
#if KVPOOL_HAVE_NUMA
  if (numa_available() >= 0) nodes = numa_max_node() + 1;
#endif
  std::vector<DeviceOptions> out;
  if (nodes == 0) {
    out.push_back(options);
    out.back().numa_node = -1;
    return out;
  }
  for (int n = 0; n < nodes; ++n) {
    DeviceOptions d = options;
    d.numa_node = n;
    d.name = options.name + "-node" + std::to_string(n);
    out.push_back(std::move(d));
  }
  return out;
}

Result<std::unique_ptr<Device>> OpenDramDevice(const DeviceOptions& options,
                                               uint32_t segment_payload_bytes) {
  KVP_ASSIGN_OR_RETURN(DeviceGeometry g, PayloadSlotGeometry(options, segment_payload_bytes));
  std::string placement;
  void* base = MapRegion(options, g.capacity_bytes, &placement);
  if (base == nullptr) return ErrnoStatus(errno, "device '" + options.name + "': mmap");
  Status bound = BindToNode(options, base, g.capacity_bytes, &placement);
  if (!bound.ok()) {
    munmap(base, g.capacity_bytes);
    return bound;
  }
  size_t map_bytes = placement.rfind("hugetlb", 0) == 0 ? RoundUp(g.capacity_bytes, kHugePage)
                                                        : g.capacity_bytes;
  return std::unique_ptr<Device>(new DramDevice(options, g, base, map_bytes, placement));
}

}  // namespace kvpool
