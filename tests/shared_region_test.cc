// The shared region of a kvpoold connection: its mapping and its pages.
//
// Two cases change a kernel setting for their duration (as root only; they
// skip otherwise) and put it back: the reserved hugetlb pool grows by the
// pages a region needs, and shmem_enabled becomes "advise", which gives huge
// pages only to mappings that ask for them.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <string>

#include "ipc/shared_region.h"
#include "util/page_backing.h"

namespace kvpool {
namespace {

constexpr uint64_t k2MiB = 2ull << 20;

std::string ReadLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

bool WriteLine(const std::string& path, const std::string& value) {
  std::ofstream out(path);
  out << value << "\n";
  out.flush();
  return static_cast<bool>(out);
}

// Sets a sysfs/procfs value and restores the old one when it goes.
class KernelSetting {
 public:
  KernelSetting(std::string path, const std::string& value) : path_(std::move(path)) {
    old_ = ReadLine(path_);
    const size_t open = old_.find('['), close = old_.find(']');
    if (open != std::string::npos && close != std::string::npos) old_ = old_.substr(open + 1, close - open - 1);
    ok_ = !old_.empty() && WriteLine(path_, value);
  }
  ~KernelSetting() {
    if (ok_) WriteLine(path_, old_);
  }
  bool ok() const { return ok_; }

 private:
  std::string path_;
  std::string old_;
  bool ok_ = false;
};

// The daemon's side of `region`: its own mapping of the same memfd.
std::unique_ptr<ipc::SharedRegion> MapOtherSide(const ipc::SharedRegion& region) {
  auto other = ipc::SharedRegion::Map(ipc::Fd(dup(region.fd())), region.size());
  EXPECT_TRUE(other.ok()) << other.status().ToString();
  return other.ok() ? std::move(other).value() : nullptr;
}

void ExpectShared(const ipc::SharedRegion& a, const ipc::SharedRegion& b) {
  ASSERT_EQ(a.size(), b.size());
  for (uint64_t off = 0; off < a.size(); off += 4096) a.data()[off] = std::byte(off / 4096 % 251);
  for (uint64_t off = 0; off < b.size(); off += 4096) {
    ASSERT_EQ(b.data()[off], std::byte(off / 4096 % 251)) << "offset " << off;
  }
}

TEST(SharedRegion, BothSidesMapItAlignedToHugePages) {
  for (RegionPages pages : {RegionPages::kTransparent, RegionPages::kSmall}) {
    auto region = ipc::SharedRegion::Create(3 << 20, "test", pages);
    ASSERT_TRUE(region.ok()) << region.status().ToString();
    EXPECT_EQ((*region)->size(), 4ull << 20);  // rounded up to 2 MiB
    EXPECT_EQ(reinterpret_cast<uintptr_t>((*region)->data()) % k2MiB, 0u);
    auto other = MapOtherSide(**region);
    ASSERT_NE(other, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(other->data()) % k2MiB, 0u);
    ExpectShared(**region, *other);
    ExpectShared(*other, **region);
  }
}

TEST(SharedRegion, DaemonSideRefusesASizeThatIsNotWholeHugePages) {
  int fd = memfd_create("odd", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, 3 << 20), 0);
  ASSERT_EQ(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
  auto mapped = ipc::SharedRegion::Map(ipc::Fd(fd), 3 << 20);
  ASSERT_FALSE(mapped.ok());
  EXPECT_NE(mapped.status().message().find("not a multiple of 2 MiB"), std::string::npos)
      << mapped.status().ToString();
}

TEST(SharedRegion, SmallPagesStayOutOfHugePages) {
  // With shmem_enabled "always" a plain region would get huge pages; kSmall
  // advises against them, which the kernel honours (except under "force").
  auto region = ipc::SharedRegion::Create(4 << 20, "test", RegionPages::kSmall);
  ASSERT_TRUE(region.ok()) << region.status().ToString();
  if (ReadLine("/sys/kernel/mm/transparent_hugepage/shmem_enabled").find("[force]") == std::string::npos) {
    EXPECT_EQ((*region)->huge_bytes(), 0u);
  }
}

TEST(SharedRegion, TransparentRegionGetsHugePagesWhereTheKernelAdvises) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to set shmem_enabled to advise for the test";
  KernelSetting advise("/sys/kernel/mm/transparent_hugepage/shmem_enabled", "advise");
  if (!advise.ok()) GTEST_SKIP() << "this kernel has no shared-memory transparent huge pages";
  auto plain = ipc::SharedRegion::Create(8 << 20, "test", RegionPages::kSmall);
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_EQ((*plain)->huge_bytes(), 0u) << "advise gives huge pages only to mappings that ask";
  auto region = ipc::SharedRegion::Create(8 << 20, "test", RegionPages::kTransparent);
  ASSERT_TRUE(region.ok()) << region.status().ToString();
  // The kernel may fall back to 4 KiB pages when memory is fragmented; a
  // region that asked gets at least some huge pages on a test machine.
  EXPECT_GT((*region)->huge_bytes(), 0u);
  EXPECT_LE((*region)->huge_bytes(), (*region)->size());
  auto other = MapOtherSide(**region);
  ASSERT_NE(other, nullptr);
  ExpectShared(**region, *other);
}

TEST(SharedRegion, HugetlbRegionUsesReservedPagesAndFallsBackWithoutThem) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to reserve 2 MiB pages (vm.nr_hugepages) for the test";
  const uint64_t before = std::stoull(ReadLine("/proc/sys/vm/nr_hugepages"));
  {
    KernelSetting reserve("/proc/sys/vm/nr_hugepages", std::to_string(before + 4));
    ASSERT_TRUE(reserve.ok());
    if (FreeHugePages() < 4) GTEST_SKIP() << "the kernel could not reserve 4 more 2 MiB pages";
    const uint64_t free_before = FreeHugePages();
    auto region = ipc::SharedRegion::Create(8 << 20, "test", RegionPages::kHugetlb);
    ASSERT_TRUE(region.ok()) << region.status().ToString();
    EXPECT_EQ((*region)->huge_bytes(), (*region)->size());
    EXPECT_EQ(free_before - FreeHugePages(), 4u) << "the region's pages come from the reserved pool";
    auto other = MapOtherSide(**region);
    ASSERT_NE(other, nullptr);
    EXPECT_EQ(other->huge_bytes(), other->size());
    ExpectShared(**region, *other);
  }
  // More than is free: the region still comes, in other pages.
  const uint64_t too_many = (FreeHugePages() + 1) * k2MiB;
  auto fallback = ipc::SharedRegion::Create(too_many, "test", RegionPages::kHugetlb);
  ASSERT_TRUE(fallback.ok()) << fallback.status().ToString();
  EXPECT_EQ(fallback.value()->size(), too_many);
  auto other = MapOtherSide(**fallback);
  ASSERT_NE(other, nullptr);
  ExpectShared(**fallback, *other);
}

TEST(PageBacking, CountsHugePagesOfTheMappingThatHoldsAnAddress) {
  EXPECT_EQ(HugePageBytesMapped(nullptr), 0u);
  const size_t bytes = 8 << 20;
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  madvise(p, bytes, MADV_NOHUGEPAGE);
  std::memset(p, 1, bytes);
  EXPECT_EQ(HugePageBytesMapped(static_cast<std::byte*>(p) + bytes / 2), 0u);
  munmap(p, bytes);
}

}  // namespace
}  // namespace kvpool
