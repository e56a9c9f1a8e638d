// The extent device inside a full pool: byte-exact round trips with both
// engines, restarts, damaged data between runs, foreign or blank files,
// tmpfs and capacity errors. The "spdk" variants run the same tests on the
// SPDK device (the extent device over an NVMe namespace) when
// KVPOOL_TEST_SPDK_TRANSPORT is set (tests/hw/spdk_nvmf_test.sh).
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/pool_impl.h"
#include "extent_test_util.h"
#include "pool_helpers.h"
#include "tier/extent/extent_file.h"

namespace kvpool::testing {
namespace {

ModelShape Tiny() { return *ModelShape::Preset("tiny"); }  // 4 layers, 32 KiB segments

uint64_t CapacityFor(const ModelShape& s, size_t chunks) {
  return uint64_t{s.SegmentBytes()} * s.layers * chunks;
}

// Opens (and closes) a pool whose only device is a psync extent at `path`
// holding `capacity` bytes (default: 8 chunks of Tiny); returns how it went.
Status OpenOneExtent(const std::string& path, uint64_t capacity = 0, bool reformat = false) {
  PoolOptions o;
  o.shape = Tiny();
  o.devices.push_back(
      ExtentOptions("ssd0", path, capacity != 0 ? capacity : CapacityFor(o.shape, 8), "psync"));
  o.devices[0].reformat = reformat;
  return Pool::Open(o).status();
}

// Two extents (+ one DRAM region when `dram`), each able to hold `chunks`
// chunks. Engine "spdk": SPDK devices on the test namespaces (the second
// one an extent file when only one namespace is given).
PoolOptions ExtentPool(const std::string& dir, const std::string& engine, size_t chunks,
                       bool dram) {
  PoolOptions o;
  o.shape = Tiny();
  const uint64_t cap = CapacityFor(o.shape, chunks);
  if (engine == "spdk") {
    const std::vector<std::string> t = SpdkTransports();
    o.devices.push_back(SpdkOptions("ssd0", t.at(0), cap, 2.0));
    o.devices.push_back(t.size() > 1
                            ? SpdkOptions("ssd1", t[1], cap, 3.0)
                            : ExtentOptions("ssd1", dir + "/ssd1.extent", cap, "psync", 3.0));
  } else {
    o.devices.push_back(ExtentOptions("ssd0", dir + "/ssd0.extent", cap, engine, 2.0));
    o.devices.push_back(ExtentOptions("ssd1", dir + "/ssd1.extent", cap, engine, 3.0));
  }
  o.devices[1].io_threads = 2;
  if (dram) o.devices.push_back(DramOptions("dram0", cap, 1.0));
  return o;
}

std::unique_ptr<Pool> OpenPool(const PoolOptions& o) {
  auto p = Pool::Open(o);
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  return p.ok() ? std::move(p).value() : nullptr;
}

// Retrieves `keys` and checks the first n chunks against `src`; returns n.
size_t RetrieveExact(Pool& pool, const std::vector<ChunkKey>& keys, const KvData& src) {
  KvData dst(pool.options().shape, keys.size());
  RetrieveOutcome r = RetrieveSync(pool, keys, dst);
  EXPECT_TRUE(r.valid.ok()) << r.valid.status().ToString();
  size_t n = r.valid.ok() ? *r.valid : 0;
  EXPECT_TRUE(dst.SameAs(src, n)) << "wrong bytes in the first " << n << " chunks";
  return n;
}

class ExtentPoolTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    KVP_SKIP_WITHOUT_URING(GetParam());
    if (GetParam() != "spdk") return;
    KVP_SKIP_WITHOUT_SPDK();
    for (const std::string& t : SpdkTransports()) {  // every test starts on a blank namespace
      ASSERT_TRUE(WipeSpdk(SpdkOptions("wipe", t, 4096))) << t;
    }
  }
  TempDir dir_;
};

TEST_P(ExtentPoolTest, RoundTripOverTwoExtentsAndDramIsByteExact) {
  PoolOptions o = ExtentPool(dir_.path(), GetParam(), 64, /*dram=*/true);
  o.placement = PlacementMode::kPartition;  // every device holds a part (copies: copies_test)
  auto pool = OpenPool(o);
  ASSERT_NE(pool, nullptr);
  auto keys = MakeKeys(o.shape, 40, 1);
  KvData src(o.shape, 40, 2);
  auto stored = OffloadSync(*pool, keys, src.ConstView());
  ASSERT_TRUE(stored.ok()) << stored.status().ToString();
  EXPECT_EQ(*stored, 40u);
  EXPECT_EQ(pool->Lookup(keys), 40u);
  EXPECT_EQ(RetrieveExact(*pool, keys, src), 40u);
  PoolStats s = pool->Stats();
  for (const DeviceStats& d : s.devices) {
    EXPECT_GT(d.segments, 0u) << d.name;
    EXPECT_EQ(d.errors, 0u) << d.name;
    EXPECT_EQ(d.bytes_read, d.bytes_written) << d.name;
    if (d.kind == "dram") {
      EXPECT_EQ(d.direct_alignment, 0u) << d.name << " copies every payload";
    } else {  // the kernel's O_DIRECT alignment (statx), 4096 on SPDK
      EXPECT_GE(d.direct_alignment, 1u) << d.name;
      EXPECT_LE(d.direct_alignment, 4096u) << d.name;
      EXPECT_EQ(d.direct_alignment & (d.direct_alignment - 1), 0u) << d.name;
    }
  }
  auto* impl = dynamic_cast<PoolImpl*>(pool.get());
  ASSERT_NE(impl, nullptr);
  std::string describe = impl->DescribeDevices()[0];
  if (GetParam() == "spdk") {
    EXPECT_NE(describe.find("engine=spdk user-space NVMe"), std::string::npos) << describe;
    EXPECT_NE(describe.find("polling: cpu"), std::string::npos) << describe;
    EXPECT_NE(describe.find("state=ok"), std::string::npos) << describe;
    EXPECT_NE(describe.find(o.devices[0].transport), std::string::npos) << describe;
    return;
  }
  EXPECT_NE(describe.find("engine=" + GetParam() + " O_DIRECT dio-mem-align=" +
                         std::to_string(s.devices[0].direct_alignment)),
            std::string::npos)
      << describe;
  EXPECT_NE(describe.find("hugepages="), std::string::npos) << describe;
  EXPECT_NE(describe.find(dir_.path()), std::string::npos) << describe;
  if (GetParam() == "uring") {
    EXPECT_NE(describe.find("registered-buffers=yes"), std::string::npos) << describe;
  }
}

TEST_P(ExtentPoolTest, RestartFindsEveryChunkByteExact) {
  PoolOptions o = ExtentPool(dir_.path(), GetParam(), 64, /*dram=*/false);
  auto keys = MakeKeys(o.shape, 30, 3);
  KvData src(o.shape, 30, 4);
  {
    auto pool = OpenPool(o);
    ASSERT_NE(pool, nullptr);
    EXPECT_EQ(pool->Stats().recovered_chunks, 0u);
    ASSERT_EQ(*OffloadSync(*pool, keys, src.ConstView()), 30u);
  }
  for (int restart = 0; restart < 2; ++restart) {
    auto pool = OpenPool(o);
    ASSERT_NE(pool, nullptr);
    EXPECT_EQ(pool->Stats().recovered_chunks, 30u) << "restart " << restart;
    EXPECT_EQ(pool->Stats().chunks, 30u);
    EXPECT_EQ(pool->Lookup(keys), 30u);
    EXPECT_EQ(RetrieveExact(*pool, keys, src), 30u);
  }
}

TEST_P(ExtentPoolTest, RestartWithDramCopiesKeepsEveryChunk) {
  PoolOptions o = ExtentPool(dir_.path(), GetParam(), 64, /*dram=*/true);  // copies mode
  auto keys = MakeKeys(o.shape, 30, 5);
  KvData src(o.shape, 30, 6);
  {
    auto pool = OpenPool(o);
    ASSERT_NE(pool, nullptr);
    ASSERT_EQ(*OffloadSync(*pool, keys, src.ConstView()), 30u);
  }
  auto pool = OpenPool(o);
  ASSERT_NE(pool, nullptr);
  EXPECT_EQ(pool->Stats().recovered_chunks, 30u);
  EXPECT_EQ(pool->Lookup(keys), 30u);
  EXPECT_EQ(RetrieveExact(*pool, keys, src), 30u);
}

TEST_P(ExtentPoolTest, PartitionRestartWithDramKeepsOnlyWholeChunks) {
  PoolOptions o = ExtentPool(dir_.path(), GetParam(), 64, /*dram=*/true);
  o.placement = PlacementMode::kPartition;
  auto keys = MakeKeys(o.shape, 30, 5);
  KvData src(o.shape, 30, 6);
  {
    auto pool = OpenPool(o);
    ASSERT_NE(pool, nullptr);
    ASSERT_EQ(*OffloadSync(*pool, keys, src.ConstView()), 30u);
  }
  auto pool = OpenPool(o);
  ASSERT_NE(pool, nullptr);
  PoolStats s = pool->Stats();
  EXPECT_EQ(s.recovered_chunks, s.chunks);
  EXPECT_LT(s.chunks, 30u) << "chunks with a layer in DRAM cannot survive a restart";
  size_t found = pool->Lookup(keys);
  EXPECT_EQ(RetrieveExact(*pool, keys, src), found);
}

TEST_P(ExtentPoolTest, RemovedChunksStayRemovedAfterACleanClose) {
  PoolOptions o = ExtentPool(dir_.path(), GetParam(), 64, /*dram=*/false);
  auto kept = MakeKeys(o.shape, 12, 7), removed = MakeKeys(o.shape, 12, 8);
  KvData src_kept(o.shape, 12, 9), src_removed(o.shape, 12, 10);
  {
    auto pool = OpenPool(o);
    ASSERT_NE(pool, nullptr);
    ASSERT_EQ(*OffloadSync(*pool, kept, src_kept.ConstView()), 12u);
    ASSERT_EQ(*OffloadSync(*pool, removed, src_removed.ConstView()), 12u);
    EXPECT_EQ(pool->Remove(removed), 12u);
  }
  auto pool = OpenPool(o);
  ASSERT_NE(pool, nullptr);
  EXPECT_EQ(pool->Stats().recovered_chunks, 12u);
  EXPECT_EQ(pool->Lookup(removed), 0u);
  EXPECT_EQ(RetrieveExact(*pool, kept, src_kept), 12u);
}

TEST_P(ExtentPoolTest, CorruptPayloadByteIsAMissNeverWrongBytes) {
  PoolOptions o = ExtentPool(dir_.path(), GetParam(), 64, /*dram=*/false);
  auto keys = MakeKeys(o.shape, 20, 11);
  KvData src(o.shape, 20, 12);
  {
    auto pool = OpenPool(o);
    ASSERT_NE(pool, nullptr);
    ASSERT_EQ(*OffloadSync(*pool, keys, src.ConstView()), 20u);
  }
  bool flipped = false;
  for (const DeviceOptions& d : o.devices) {
    ExtentImage img(d);
    ASSERT_TRUE(img.ok()) << Location(d);
    if (auto slot = img.FindSlot(keys[7], 2); slot && !flipped) {
      img.FlipByte(*slot, format::kBlockBytes + 1000);
      flipped = true;
    }
  }
  ASSERT_TRUE(flipped) << "chunk 7 layer 2 not found on any extent";
  auto pool = OpenPool(o);
  ASSERT_NE(pool, nullptr);
  EXPECT_EQ(RetrieveExact(*pool, keys, src), 7u);
  EXPECT_EQ(pool->Lookup(keys), 7u) << "a chunk that failed its checksum is dropped";
}

TEST_P(ExtentPoolTest, CorruptHeaderIsDiscardedAtOpen) {
  PoolOptions o = ExtentPool(dir_.path(), GetParam(), 64, /*dram=*/false);
  auto keys = MakeKeys(o.shape, 20, 13);
  KvData src(o.shape, 20, 14);
  {
    auto pool = OpenPool(o);
    ASSERT_NE(pool, nullptr);
    ASSERT_EQ(*OffloadSync(*pool, keys, src.ConstView()), 20u);
  }
  bool flipped = false;
  for (const DeviceOptions& d : o.devices) {
    ExtentImage img(d);
    if (auto slot = img.FindSlot(keys[5], 0); slot && !flipped) {
      img.FlipByte(*slot, format::slot::kLayer);
      flipped = true;
    }
  }
  ASSERT_TRUE(flipped);
  auto pool = OpenPool(o);
  ASSERT_NE(pool, nullptr);
  // Chunk 5 is dropped; chunks 6..19 cannot be reached without it and give
  // their slots back.
  EXPECT_EQ(pool->Stats().recovered_chunks, 5u);
  EXPECT_EQ(pool->Stats().unreachable_reclaimed_chunks, 14u);
  EXPECT_EQ(pool->Lookup(keys), 5u);
  EXPECT_EQ(RetrieveExact(*pool, keys, src), 5u);
}

TEST_P(ExtentPoolTest, AnotherPoolIsRefusedAndItsDataLeftUntouched) {
  PoolOptions o = ExtentPool(dir_.path(), GetParam(), 64, /*dram=*/false);
  auto keys = MakeKeys(o.shape, 10, 15);
  KvData src(o.shape, 10, 16);
  {
    auto pool = OpenPool(o);
    ASSERT_NE(pool, nullptr);
    ASSERT_EQ(*OffloadSync(*pool, keys, src.ConstView()), 10u);
  }
  const uint64_t before = DeviceDigest(o.devices[0]);
  PoolOptions other = o;
  other.tenant_salt = "another tenant";  // another pool id
  auto p = Pool::Open(other);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(p.status().message().find(Location(o.devices[0])), std::string::npos)
      << p.status().ToString();
  EXPECT_NE(p.status().message().find("another pool"), std::string::npos) << p.status().ToString();
  PoolOptions bigger = o;
  bigger.devices[0].capacity_bytes *= 2;  // another geometry
  p = Pool::Open(bigger);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(p.status().message().find("slots"), std::string::npos) << p.status().ToString();
  EXPECT_EQ(DeviceDigest(o.devices[0]), before) << "a refused open wrote to the extent";
  auto pool = OpenPool(o);
  ASSERT_NE(pool, nullptr);
  EXPECT_EQ(RetrieveExact(*pool, keys, src), 10u);
}

TEST_P(ExtentPoolTest, ReformatOpensAnotherPoolsExtentEmpty) {
  PoolOptions o = ExtentPool(dir_.path(), GetParam(), 64, /*dram=*/false);
  auto keys = MakeKeys(o.shape, 10, 17);
  KvData src(o.shape, 10, 18);
  {
    auto pool = OpenPool(o);
    ASSERT_NE(pool, nullptr);
    ASSERT_EQ(*OffloadSync(*pool, keys, src.ConstView()), 10u);
  }
  PoolOptions other = o;
  other.tenant_salt = "another tenant";
  for (auto& d : other.devices) d.reformat = true;
  auto pool = OpenPool(other);
  ASSERT_NE(pool, nullptr);
  EXPECT_EQ(pool->Stats().recovered_chunks, 0u);
  EXPECT_EQ(pool->Stats().segments, 0u);
  EXPECT_EQ(pool->Lookup(keys), 0u);
  ASSERT_EQ(*OffloadSync(*pool, keys, src.ConstView()), 10u);
  EXPECT_EQ(RetrieveExact(*pool, keys, src), 10u);
}

TEST_P(ExtentPoolTest, ProbeSlotsAreNotRecovered) {
  PoolOptions o = ExtentPool(dir_.path(), GetParam(), 64, /*dram=*/false);
  o.probe_mib = 1;
  for (auto& d : o.devices) d.bandwidth_gibps = 0;  // measured at open: zero-key writes
  { ASSERT_NE(OpenPool(o), nullptr); }
  auto pool = OpenPool(o);
  ASSERT_NE(pool, nullptr);
  EXPECT_EQ(pool->Stats().recovered_chunks, 0u);
  EXPECT_EQ(pool->Stats().segments, 0u);
}

INSTANTIATE_TEST_SUITE_P(Engines, ExtentPoolTest, ::testing::Values("uring", "psync", "spdk"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

TEST(ExtentOpen, ANonEmptyFileThatIsNotAnExtentIsNotClobbered) {
  TempDir dir;
  const std::string path = dir.path() + "/notes.txt";
  std::ofstream(path) << "precious user data\n";
  const uint64_t before = FileDigest(path);
  Status s = OpenOneExtent(path);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find(path), std::string::npos) << s.ToString();
  EXPECT_EQ(FileDigest(path), before);
  s = OpenOneExtent(path, 0, /*reformat=*/true);
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST(ExtentOpen, AnAllZeroFileIsFormatted) {
  TempDir dir;
  const std::string path = dir.path() + "/zeros.extent";
  { std::ofstream(path) << std::string(8192, '\0'); }
  PoolOptions o;
  o.shape = Tiny();
  o.devices.push_back(ExtentOptions("ssd0", path, CapacityFor(o.shape, 8), "psync"));
  EXPECT_NE(OpenPool(o), nullptr);
}

TEST(ExtentOpen, TmpfsIsRefusedNamingThePath) {
  struct statfs fs {};
  if (::statfs("/dev/shm", &fs) != 0 || fs.f_type != TMPFS_MAGIC) {
    GTEST_SKIP() << "/dev/shm is not a tmpfs here";
  }
  const std::string path = "/dev/shm/kvpool-extent-test-" + std::to_string(::getpid());
  Status s = OpenOneExtent(path);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find(path), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("O_DIRECT"), std::string::npos) << s.ToString();
  EXPECT_FALSE(std::filesystem::exists(path));
}

// What the kernel reports of O_DIRECT decides: no direct I/O at all
// (alignments of 0), or blocks larger than the format's, is refused by
// name; a kernel that reports nothing is trusted with what open() allowed.
TEST(ExtentOpen, DirectIoReportsThatCannotHoldAnExtentAreRefused) {
  const std::string path = "/mnt/data/kv.extent";
  Status none = CheckDirectIo({true, 0, 0}, "device 'ssd0'", path);
  EXPECT_EQ(none.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(none.message().find("'" + path + "'"), std::string::npos) << none.ToString();
  EXPECT_NE(none.message().find("O_DIRECT"), std::string::npos) << none.ToString();
  Status large = CheckDirectIo({true, 512, 16384}, "device 'ssd0'", path);
  EXPECT_EQ(large.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(large.message().find("16384"), std::string::npos) << large.ToString();
  EXPECT_NE(large.message().find(path), std::string::npos) << large.ToString();
  EXPECT_EQ(CheckDirectIo({false, 0, 8192}, "device 'ssd0'", path).code(),
            StatusCode::kInvalidArgument);  // a block device's logical block
  EXPECT_TRUE(CheckDirectIo({true, 512, 512}, "device 'ssd0'", path).ok());
  EXPECT_TRUE(CheckDirectIo({true, 4, 4096}, "device 'ssd0'", path).ok());
  EXPECT_TRUE(CheckDirectIo({false, 0, 0}, "device 'ssd0'", path).ok());
}

// ext4 mounted with data=journal accepts O_DIRECT and serves it from the
// page cache; the kernel says so (statx STATX_DIOALIGN of 0). An extent
// there would neither bypass memory nor be measured cold: it is refused
// and nothing is left behind. Needs root, loop devices and mkfs.ext4.
class JournalledExt4 {
 public:
  explicit JournalledExt4(const std::string& dir) : image_(dir + "/ext4.img"), mount_(dir + "/mnt") {
    if (::geteuid() != 0) {
      why_not_ = "needs root to mount a loop device";
      return;
    }
    std::filesystem::create_directory(mount_);
    const std::string mkfs = "truncate -s 64M '" + image_ + "' && mkfs.ext4 -q -F '" + image_ +
                             "' >/dev/null 2>&1";
    if (std::system(mkfs.c_str()) != 0) {
      why_not_ = "mkfs.ext4 is not available";
      return;
    }
    const std::string mount = "mount -o loop,data=journal '" + image_ + "' '" + mount_ + "' 2>/dev/null";
    if (std::system(mount.c_str()) != 0) {
      why_not_ = "cannot mount a loop device here";
      return;
    }
    mounted_ = true;
  }
  ~JournalledExt4() {
    if (mounted_) (void)std::system(("umount '" + mount_ + "'").c_str());
  }
  const std::string& why_not() const { return why_not_; }
  const std::string& mount() const { return mount_; }

 private:
  std::string image_, mount_, why_not_;
  bool mounted_ = false;
};

TEST(ExtentOpen, AFilesystemThatBuffersODirectIsRefused) {
  TempDir dir;
  JournalledExt4 fs(dir.path());
  if (!fs.why_not().empty()) GTEST_SKIP() << fs.why_not();
  {  // a kernel before 6.1 does not report it; then nothing can tell
    std::ofstream(fs.mount() + "/probe") << "x";
    struct statx stx {};
    if (::statx(AT_FDCWD, (fs.mount() + "/probe").c_str(), 0, STATX_DIOALIGN, &stx) != 0 ||
        (stx.stx_mask & STATX_DIOALIGN) == 0) {
      GTEST_SKIP() << "this kernel does not report STATX_DIOALIGN";
    }
  }
  const std::string path = fs.mount() + "/kv.extent";
  Status s = OpenOneExtent(path);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find(path), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("does not support O_DIRECT"), std::string::npos) << s.ToString();
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(ExtentOpen, CapacityBeyondFreeSpaceIsNoSpaceBeforeAnythingIsWritten) {
  TempDir dir;
  const std::string path = dir.path() + "/huge.extent";
  Status s = OpenOneExtent(path, 1ull << 50);  // 1 PiB
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kNoSpace) << s.ToString();
  EXPECT_NE(s.message().find(path), std::string::npos) << s.ToString();
  EXPECT_FALSE(std::filesystem::exists(path));
}

// The SPDK device's own open errors, on a test namespace.
class SpdkOpenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    KVP_SKIP_WITHOUT_SPDK();
    d_ = SpdkOptions("nvme0", SpdkTransports()[0], CapacityFor(Tiny(), 8));
    ASSERT_TRUE(WipeSpdk(d_));
  }
  PoolOptions Options() const {
    PoolOptions o;
    o.shape = Tiny();
    o.devices.push_back(d_);
    return o;
  }
  DeviceOptions d_;
};

TEST_F(SpdkOpenTest, ANonEmptyNamespaceThatIsNotAnExtentIsNotClobbered) {
  {
    std::vector<std::byte> block(format::kBlockBytes, std::byte{'x'});
    ASSERT_TRUE(RawExtent(d_).Write(8192, block.data(), block.size()));
  }
  const uint64_t before = DeviceDigest(d_);
  auto p = Pool::Open(Options());
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument) << p.status().ToString();
  EXPECT_NE(p.status().message().find(d_.transport), std::string::npos) << p.status().ToString();
  EXPECT_EQ(DeviceDigest(d_), before);
  PoolOptions o = Options();
  o.devices[0].reformat = true;
  EXPECT_NE(OpenPool(o), nullptr);
}

TEST_F(SpdkOpenTest, CapacityBeyondTheNamespaceIsNoSpaceBeforeAnythingIsWritten) {
  const uint64_t before = DeviceDigest(d_);
  PoolOptions o = Options();
  o.devices[0].capacity_bytes = 1ull << 40;  // 1 TiB
  auto p = Pool::Open(o);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kNoSpace) << p.status().ToString();
  EXPECT_NE(p.status().message().find(d_.transport), std::string::npos) << p.status().ToString();
  EXPECT_EQ(DeviceDigest(d_), before);
}

}  // namespace
}  // namespace kvpool::testing
