#include "ipc/shared_region.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "util/errno_status.h"

namespace kvpool::ipc {
namespace {

constexpr uint64_t kRegionGranule = 2ull << 20;
constexpr int kRequiredSeals = F_SEAL_SHRINK | F_SEAL_GROW;

// MAP_POPULATE: the pages are made and mapped now, in one pass, instead of
// one fault per 4 KiB page in the middle of the first retrievals (each side
// has its own page tables, so each populates its mapping).
Result<std::byte*> MapShared(int fd, uint64_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
  if (p == MAP_FAILED) return ErrnoStatus(errno, "mmap of the shared region");
  return static_cast<std::byte*>(p);
}

}  // namespace

Result<std::unique_ptr<SharedRegion>> SharedRegion::Create(uint64_t bytes, const std::string& name) {
  if (bytes == 0) return Status::InvalidArgument("shared region size is 0");
  bytes = (bytes + kRegionGranule - 1) / kRegionGranule * kRegionGranule;
  Fd fd(memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd.valid()) return ErrnoStatus(errno, "memfd_create");
  if (ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0) return ErrnoStatus(errno, "sizing the shared region");
  if (fcntl(fd.get(), F_ADD_SEALS, kRequiredSeals | F_SEAL_SEAL) != 0) {
    return ErrnoStatus(errno, "sealing the shared region");
  }
  KVP_ASSIGN_OR_RETURN(std::byte* base, MapShared(fd.get(), bytes));
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
  KVP_ASSIGN_OR_RETURN(std::byte* base, MapShared(fd.get(), bytes));
  return std::unique_ptr<SharedRegion>(new SharedRegion(std::move(fd), base, bytes));
}

SharedRegion::~SharedRegion() { munmap(base_, bytes_); }

bool SharedRegion::Contains(const void* p, uint64_t n) const {
  auto a = reinterpret_cast<uintptr_t>(p);
  auto b = reinterpret_cast<uintptr_t>(base_);
  return a >= b && n <= bytes_ && a - b <= bytes_ - n;
}

}  // namespace kvpool::ipc
