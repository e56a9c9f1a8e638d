#include "ipc/shared_region.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "util/errno_status.h"
#include "util/log.h"
#include "util/page_backing.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14
#endif
#ifndef MFD_HUGETLB
#define MFD_HUGETLB 0x0004U
#endif
#ifndef MFD_HUGE_2MB
#define MFD_HUGE_2MB (21U << 26)
#endif

namespace kvpool::ipc {
namespace {

constexpr uint64_t kRegionGranule = 2ull << 20;  // also the huge page size
constexpr int kRequiredSeals = F_SEAL_SHRINK | F_SEAL_GROW;

// Maps `fd` shared at a 2 MiB-aligned address: a huge page (hugetlb or
// transparent) is mapped as one only at such an address, and mmap aligns
// shared memory itself only when huge pages were enabled for all of it.
Result<std::byte*> MapAligned(int fd, uint64_t bytes) {
  const uint64_t span = bytes + kRegionGranule;
  void* area = mmap(nullptr, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (area == MAP_FAILED) return ErrnoStatus(errno, "reserving addresses for the shared region");
  const auto start = reinterpret_cast<uintptr_t>(area);
  const uintptr_t aligned = (start + kRegionGranule - 1) / kRegionGranule * kRegionGranule;
  void* p = mmap(reinterpret_cast<void*>(aligned), bytes, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_FIXED, fd, 0);
  const int err = errno;
  if (p == MAP_FAILED) {
    munmap(area, span);
    return ErrnoStatus(err, "mmap of the shared region");
  }
  if (aligned > start) munmap(area, aligned - start);
  const uintptr_t end = aligned + bytes;
  if (start + span > end) munmap(reinterpret_cast<void*>(end), start + span - end);
  return static_cast<std::byte*>(p);
}

// Makes the pages of [p, p + bytes) and maps them now, in one pass, instead
// of one fault per page in the middle of the first retrievals (each side has
// its own page tables). MADV_POPULATE_WRITE reports a page that cannot be
// had (hugetlb over a cgroup's limit) as an error where a touch would
// SIGBUS; kernels before 5.14 lack it, and the pages are touched instead.
Status Populate(std::byte* p, uint64_t bytes) {
  if (madvise(p, bytes, MADV_POPULATE_WRITE) == 0) return Status::OK();
  if (errno != EINVAL) return ErrnoStatus(errno, "populating the shared region");
  const long page = sysconf(_SC_PAGESIZE);
  for (uint64_t off = 0; off < bytes; off += static_cast<uint64_t>(page)) {
    // Adds nothing: makes the page without changing what the other side wrote.
    __atomic_fetch_add(reinterpret_cast<uint8_t*>(p + off), 0, __ATOMIC_RELAXED);
  }
  return Status::OK();
}

// Sizes, seals, maps and populates a new memfd.
Result<std::byte*> SetUp(int fd, uint64_t bytes, RegionPages pages) {
  if (ftruncate(fd, static_cast<off_t>(bytes)) != 0) return ErrnoStatus(errno, "sizing the shared region");
  if (fcntl(fd, F_ADD_SEALS, kRequiredSeals | F_SEAL_SEAL) != 0) {
    return ErrnoStatus(errno, "sealing the shared region");
  }
  KVP_ASSIGN_OR_RETURN(std::byte* base, MapAligned(fd, bytes));
  // Advice only, before the pages are made: kernels that ignore it lose nothing.
  if (pages == RegionPages::kTransparent) madvise(base, bytes, MADV_HUGEPAGE);
  if (pages == RegionPages::kSmall) madvise(base, bytes, MADV_NOHUGEPAGE);
  Status populated = Populate(base, bytes);
  if (!populated.ok()) {
    munmap(base, bytes);
    return populated;
  }
  return base;
}

// A hugetlb memfd of `bytes` (a multiple of 2 MiB), set up. Fails when the
// reserved pool has too few free pages (mmap reserves them all up front).
Result<std::pair<Fd, std::byte*>> CreateHugetlb(uint64_t bytes, const std::string& name) {
  Fd fd(memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB | MFD_HUGE_2MB));
  if (!fd.valid()) return ErrnoStatus(errno, "memfd_create of 2 MiB hugetlb pages");
  KVP_ASSIGN_OR_RETURN(std::byte* base, SetUp(fd.get(), bytes, RegionPages::kHugetlb));
  return std::make_pair(std::move(fd), base);
}

}  // namespace

uint64_t SharedRegion::huge_bytes() const {
  std::call_once(huge_measured_, [this] { huge_bytes_ = HugePageBytesMapped(base_); });
  return huge_bytes_;
}

Result<std::unique_ptr<SharedRegion>> SharedRegion::Create(uint64_t bytes, const std::string& name,
                                                           RegionPages pages) {
  if (bytes == 0) return Status::InvalidArgument("shared region size is 0");
  bytes = (bytes + kRegionGranule - 1) / kRegionGranule * kRegionGranule;
  if (pages == RegionPages::kHugetlb) {
    auto huge = CreateHugetlb(bytes, name);
    if (huge.ok()) {
      return std::unique_ptr<SharedRegion>(new SharedRegion(std::move(huge->first), huge->second, bytes));
    }
    log::Warn("shared region of " + std::to_string(bytes >> 20) + " MiB: " + huge.status().message() +
              " (too few free 2 MiB pages in vm.nr_hugepages?); using transparent huge pages");
    pages = RegionPages::kTransparent;
  }
  Fd fd(memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd.valid()) return ErrnoStatus(errno, "memfd_create");
  KVP_ASSIGN_OR_RETURN(std::byte* base, SetUp(fd.get(), bytes, pages));
  return std::unique_ptr<SharedRegion>(new SharedRegion(std::move(fd), base, bytes));
}

Result<std::unique_ptr<SharedRegion>> SharedRegion::Map(Fd fd, uint64_t bytes) {
  int seals = fcntl(fd.get(), F_GET_SEALS);
  if (seals < 0) return Status::InvalidArgument("the shared region is not a memfd");
  if ((seals & kRequiredSeals) != kRequiredSeals) {
    return Status::InvalidArgument("the shared region is not sealed against shrinking and growing");
  }
  struct stat st{};
  if (fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, "fstat of the shared region");
  if (bytes == 0 || static_cast<uint64_t>(st.st_size) != bytes) {
    return Status::InvalidArgument("hello.region_bytes " + std::to_string(bytes) +
                                   " does not match the memfd's size " + std::to_string(st.st_size));
  }
  if (bytes % kRegionGranule != 0) {
    return Status::InvalidArgument("hello.region_bytes " + std::to_string(bytes) +
                                   " is not a multiple of 2 MiB");
  }
  KVP_ASSIGN_OR_RETURN(std::byte* base, MapAligned(fd.get(), bytes));
  Status populated = Populate(base, bytes);
  if (!populated.ok()) {
    munmap(base, bytes);
    return populated;
  }
  return std::unique_ptr<SharedRegion>(new SharedRegion(std::move(fd), base, bytes));
}

SharedRegion::~SharedRegion() { munmap(base_, bytes_); }

bool SharedRegion::Contains(const void* p, uint64_t n) const {
  auto a = reinterpret_cast<uintptr_t>(p);
  auto b = reinterpret_cast<uintptr_t>(base_);
  return a >= b && n <= bytes_ && a - b <= bytes_ - n;
}

}  // namespace kvpool::ipc
