// Zero-copy extent I/O (tier/extent/extent_queue.h): caller memory aligned
// as the device asks (Device::direct_alignment: the kernel's O_DIRECT memory
// alignment, 4096 where it does not say) moves straight between the file and
// the caller, only a payload's last partial block through the bounce buffer;
// other memory bounces and is counted. Either way the bytes, the on-device format and the header
// checks are the same. Also: the queue depth a device reaches is measured
// (DeviceRunner::in_flight_seconds), so that queue_depth can be seen to mean
// transfers in flight. The "spdk" variants run on the SPDK device (NVMe
// scatter lists) where tests/hw/spdk_nvmf_test.sh provides a namespace.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/device_runner.h"
#include "core/io_waiter.h"
#include "extent_test_util.h"
#include "tier/extent/block_target.h"
#include "tier/extent/extent_device.h"
#include "tier/extent/extent_file.h"
#include "util/aligned_buffer.h"
#include "util/checksum.h"

namespace kvpool::testing {
namespace {

constexpr ChunkKey kPoolId{0x7a, 0xc0};

class ZeroCopyTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    KVP_SKIP_WITHOUT_URING(GetParam());
    if (GetParam() == "spdk") KVP_SKIP_WITHOUT_SPDK();
  }

  // A runner over a fresh extent of `slots` slots for payloads of `payload`.
  // Engine "spdk": the first test namespace, taken over (reformat) each time.
  std::unique_ptr<DeviceRunner> Open(uint32_t payload, uint32_t slots, uint32_t queue_depth = 16,
                                     bool zero_copy = true) {
    const uint64_t capacity = uint64_t{slots} * (payload + 2 * format::kBlockBytes) + (1 << 20);
    DeviceOptions d =
        GetParam() == "spdk"
            ? SpdkOptions("zc", SpdkTransports().at(0), capacity)
            : ExtentOptions("zc", dir_.path() + "/zc" + std::to_string(opened_++) + ".extent",
                            capacity, GetParam());
    d.reformat = GetParam() == "spdk";
    d.queue_depth = queue_depth;
    d.zero_copy = zero_copy;
    auto dev = OpenDevice(d, payload, kPoolId);
    EXPECT_TRUE(dev.ok()) << dev.status().ToString();
    if (!dev.ok()) return nullptr;
    auto r = DeviceRunner::Start(std::move(dev).value(), 0);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return nullptr;
    alignment_ = (*r)->device().direct_alignment();
    return std::move(r).value();
  }

  // Operations RoundTrip expects to bounce: `count` for each side whose
  // memory is off the device's direct alignment.
  // REQUIRES: a device was opened.
  uint64_t Bounces(uint32_t count, size_t write_shift, size_t read_shift) const {
    return uint64_t{count} * ((write_shift % alignment_ != 0) + (read_shift % alignment_ != 0));
  }

  // One op per slot over `count` segments of `length` at `base + i * stride`.
  static std::vector<SegmentIo> Ops(IoKind kind, std::byte* base, size_t stride, uint32_t length,
                                    uint32_t count, const std::vector<uint64_t>& checksums) {
    std::vector<SegmentIo> ops(count);
    for (uint32_t i = 0; i < count; ++i) {
      ops[i].kind = kind;
      ops[i].slot = i;
      ops[i].length = length;
      ops[i].buffer = base + i * stride;
      ops[i].tag.chunk = ChunkKey{length, i + 1ull};
      ops[i].tag.layer = i % 3;
      if (kind == IoKind::kRead) ops[i].checksum = checksums[i];
    }
    return ops;
  }

  static std::vector<uint64_t> ChecksumsOf(const std::vector<SegmentIo>& writes) {
    std::vector<uint64_t> out;
    for (const SegmentIo& op : writes) out.push_back(op.checksum);
    return out;
  }

  // Writes `count` segments of `length` from memory at byte offset
  // `write_shift` of an aligned buffer, reads them back into memory at
  // `read_shift`, and expects every byte back. Returns the bounced count.
  uint64_t RoundTrip(uint32_t length, uint32_t count, size_t write_shift, size_t read_shift,
                     bool zero_copy = true) {
    auto runner = Open(length, count, 16, zero_copy);
    if (!runner) return ~0ull;
    const size_t stride = (length + format::kBlockBytes - 1) / format::kBlockBytes * format::kBlockBytes;
    AlignedBuffer src(stride * count + format::kBlockBytes);
    for (size_t i = 0; i < src.size(); ++i) src.data()[i] = std::byte(uint8_t(i * 131 + i / 4096));
    std::vector<SegmentIo> w = Ops(IoKind::kWrite, src.data() + write_shift, stride, length, count, {});
    IoWaiter waiter;
    EXPECT_TRUE(waiter.Run(*runner, w).ok());
    AlignedBuffer dst(stride * count + format::kBlockBytes);
    std::memset(dst.data(), 0xee, dst.size());
    std::vector<SegmentIo> r =
        Ops(IoKind::kRead, dst.data() + read_shift, stride, length, count, ChecksumsOf(w));
    Status s = waiter.Run(*runner, r);
    EXPECT_TRUE(s.ok()) << s.ToString();
    for (uint32_t i = 0; i < count; ++i) {
      EXPECT_EQ(std::memcmp(dst.data() + read_shift + i * stride, src.data() + write_shift + i * stride,
                            length),
                0)
          << "segment " << i << " of " << length << " bytes";
    }
    // Nothing beyond a segment's own bytes was written into the caller's memory.
    if (read_shift + length < stride) {
      EXPECT_EQ(dst.data()[read_shift + length], std::byte{0xee});
    }
    return runner->counters().bounced_segments.load();
  }

  TempDir dir_;
  int opened_ = 0;        // each Open makes a new extent
  size_t alignment_ = 0;  // direct_alignment of the device opened last
};

TEST_P(ZeroCopyTest, AlignedMemoryMovesDirectlyWholeBlocksOrNot) {
  EXPECT_EQ(RoundTrip(64 * 1024, 24, 0, 0), 0u);
  EXPECT_EQ(RoundTrip(3 * 4096 + 100, 24, 0, 0), 0u);  // the partial block via the arena
  EXPECT_EQ(RoundTrip(4096, 8, 0, 0), 0u);
}

TEST_P(ZeroCopyTest, TheDeviceReportsItsDirectAlignment) {
  ASSERT_TRUE(Open(4096, 4));
  EXPECT_GE(alignment_, 1u);
  EXPECT_LE(alignment_, 4096u);
  EXPECT_EQ(alignment_ & (alignment_ - 1), 0u) << alignment_ << " is not a power of two";
  if (GetParam() == "spdk") {
    EXPECT_EQ(alignment_, 4096u);
  }
  ASSERT_TRUE(Open(4096, 4, 16, /*zero_copy=*/false));
  EXPECT_EQ(alignment_, 0u);
}

TEST_P(ZeroCopyTest, UnalignedOrSubBlockMemoryBouncesAndIsCounted) {
  // One byte off: no device's DMA alignment allows it but a byte-aligned one.
  const uint64_t bounced = RoundTrip(64 * 1024, 10, 1, 1);
  EXPECT_EQ(bounced, Bounces(10, 1, 1));
  if (alignment_ > 1) {
    EXPECT_EQ(bounced, 20u);  // 10 writes + 10 reads
  }
  EXPECT_EQ(RoundTrip(100, 6, 0, 0), 12u);      // no whole block to move directly
}

// The device's alignment, not the page: memory at `direct_alignment` past a
// page boundary moves directly (512 on virtio-blk, 4 on NVMe), and at half
// of it bounces. A device that asks for 4096 (SPDK, or a kernel that does
// not report it) bounces memory 512 bytes past a page.
TEST_P(ZeroCopyTest, MemoryMovesDirectlyAtTheDevicesAlignmentAndNotBelow) {
  ASSERT_TRUE(Open(4096, 4));
  const size_t a = alignment_;
  if (a >= format::kBlockBytes) {
    EXPECT_EQ(RoundTrip(64 * 1024, 10, 512, 512), 20u);
    return;
  }
  EXPECT_EQ(RoundTrip(64 * 1024, 10, a, a), 0u);
  EXPECT_EQ(RoundTrip(5 * 4096 + 7, 12, 2 * a, a), 0u);  // and its last partial block
  if (a > 1) {
    EXPECT_EQ(RoundTrip(64 * 1024, 10, a / 2, a / 2), 20u);
  }
}

TEST_P(ZeroCopyTest, ZeroCopyOffBouncesEverything) {
  EXPECT_EQ(RoundTrip(64 * 1024, 10, 0, 0, /*zero_copy=*/false), 20u);
}

TEST_P(ZeroCopyTest, DirectAndBouncedTransfersShareOneFormat) {
  const uint64_t read_bounced = RoundTrip(5 * 4096 + 7, 12, 0, 1);  // written direct
  EXPECT_EQ(read_bounced, Bounces(12, 0, 1));
  const uint64_t write_bounced = RoundTrip(5 * 4096 + 7, 12, 1, 0);  // read direct
  EXPECT_EQ(write_bounced, Bounces(12, 1, 0));
  if (alignment_ == 1) GTEST_SKIP() << "byte-aligned O_DIRECT: nothing bounced";
}

TEST_P(ZeroCopyTest, ADirectReadOfAnotherSegmentIsCorruption) {
  auto runner = Open(8192, 2);
  ASSERT_TRUE(runner);
  AlignedBuffer src(2 * 8192), dst(8192);
  std::vector<SegmentIo> w = Ops(IoKind::kWrite, src.data(), 8192, 8192, 2, {});
  IoWaiter waiter;
  ASSERT_TRUE(waiter.Run(*runner, w).ok());
  // Slot 1 read as if it held slot 0's chunk: the header check refuses it.
  std::vector<SegmentIo> r = Ops(IoKind::kRead, dst.data(), 8192, 8192, 1, ChecksumsOf(w));
  r[0].slot = 1;
  Status s = waiter.Run(*runner, r);
  EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.ToString();
  EXPECT_FALSE(r[0].bounced);
}

// A fully bounced read is hashed while it is copied out of the bounce
// buffer (SegmentIo::delivered_checksum); the runner still refuses a payload
// whose checksum is not the expected one. A direct read is hashed after.
TEST_P(ZeroCopyTest, ABouncedReadIsVerifiedFromItsCopy) {
  constexpr uint32_t kPayload = 64 * 1024;
  auto runner = Open(kPayload, 2);
  ASSERT_TRUE(runner);
  if (alignment_ == 1) GTEST_SKIP() << "byte-aligned O_DIRECT: no memory bounces";
  AlignedBuffer src(2 * kPayload), dst(2 * kPayload + format::kBlockBytes);
  for (size_t i = 0; i < src.size(); ++i) src.data()[i] = std::byte(uint8_t(i * 7 + 3));
  std::vector<SegmentIo> w = Ops(IoKind::kWrite, src.data(), kPayload, kPayload, 2, {});
  IoWaiter waiter;
  ASSERT_TRUE(waiter.Run(*runner, w).ok());
  std::vector<SegmentIo> r = Ops(IoKind::kRead, dst.data() + 1, kPayload, kPayload, 2, ChecksumsOf(w));
  ASSERT_TRUE(waiter.Run(*runner, r).ok());
  for (const SegmentIo& op : r) {
    EXPECT_TRUE(op.bounced);
    ASSERT_TRUE(op.delivered_checksum_known);
    EXPECT_EQ(op.delivered_checksum, Checksum64(op.buffer, op.length));
  }
  r[1].checksum ^= 1;  // what the index expects is not what the slot holds
  Status s = waiter.Run(*runner, r);
  EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.ToString();
  EXPECT_TRUE(r[0].status.ok());
  EXPECT_EQ(r[1].status.code(), StatusCode::kCorruption);

  std::vector<SegmentIo> direct = Ops(IoKind::kRead, dst.data(), kPayload, kPayload, 2, ChecksumsOf(w));
  ASSERT_TRUE(waiter.Run(*runner, direct).ok());
  EXPECT_FALSE(direct[0].bounced);
  EXPECT_FALSE(direct[0].delivered_checksum_known);
}

TEST_P(ZeroCopyTest, QueueDepthIsTransfersInFlight) {
  constexpr uint32_t kPayload = 64 * 1024, kCount = 256, kDepth = 8;
  auto runner = Open(kPayload, kCount, kDepth);
  ASSERT_TRUE(runner);
  AlignedBuffer src(size_t{kPayload} * kCount), dst(size_t{kPayload} * kCount);
  std::vector<SegmentIo> w = Ops(IoKind::kWrite, src.data(), kPayload, kPayload, kCount, {});
  IoWaiter waiter;
  ASSERT_TRUE(waiter.Run(*runner, w).ok());
  const double in_flight0 = runner->in_flight_seconds(), busy0 = runner->busy_seconds();
  std::vector<SegmentIo> r = Ops(IoKind::kRead, dst.data(), kPayload, kPayload, kCount, ChecksumsOf(w));
  ASSERT_TRUE(waiter.Run(*runner, r).ok());
  const double mean = (runner->in_flight_seconds() - in_flight0) / (runner->busy_seconds() - busy0);
  // Measured over the runner's busy time, which also holds the checksum work.
  EXPECT_LE(mean, kDepth + 0.01);
  if (GetParam() == "psync") {  // one pread at a time
    EXPECT_GT(mean, 0.3);
    EXPECT_LE(mean, 1.01);
  } else {
    EXPECT_GT(mean, 1.5) << GetParam() << " keeps several of " << kDepth << " transfers in flight";
  }
}

// An extent file that claims byte-aligned O_DIRECT memory, as a kernel
// whose STATX_DIOALIGN report does not hold for a device would: the kernel
// refuses (EINVAL) a direct transfer of memory off its real alignment.
class OverstatedAlignment final : public BlockTarget {
 public:
  explicit OverstatedAlignment(std::unique_ptr<ExtentFile> file) : file_(std::move(file)) {}
  Status ReadAt(std::byte* b, size_t n, uint64_t off, const std::string& what) override {
    return file_->ReadAt(b, n, off, what);
  }
  Status WriteAt(const std::byte* b, size_t n, uint64_t off, const std::string& what) override {
    return file_->WriteAt(b, n, off, what);
  }
  Status Flush(const std::string& what) override { return file_->Flush(what); }
  uint64_t size() const override { return file_->size(); }
  Status EnsureSize(uint64_t bytes) override { return file_->EnsureSize(bytes); }
  Result<bool> LooksEmpty() override { return file_->LooksEmpty(); }
  bool created() const override { return file_->created(); }
  const std::string& location() const override { return file_->location(); }
  Result<std::unique_ptr<RawQueue>> NewEngine(uint32_t depth, size_t bytes) override {
    return file_->NewEngine(depth, bytes);
  }
  size_t direct_alignment() const override { return 1; }
  std::string Describe() const override { return file_->Describe(); }

 private:
  std::unique_ptr<ExtentFile> file_;
};

// A direct transfer the kernel refuses is redone through the bounce buffer,
// so nothing is lost, and the device moves no memory directly from then on
// (Device::direct_alignment 0). Writes are redone by one device, reads by a
// second one opened on the same extent.
TEST_P(ZeroCopyTest, ADirectTransferTheKernelRefusesIsRedoneThroughTheBounceBuffer) {
  if (GetParam() == "spdk") GTEST_SKIP() << "the SPDK target's alignment is its own (4096)";
  constexpr uint32_t kPayload = 64 * 1024 + 100, kCount = 12;
  const size_t stride = 17 * format::kBlockBytes;
  DeviceOptions d = ExtentOptions("refused", dir_.path() + "/refused.extent",
                                  uint64_t{kCount} * (kPayload + 3 * format::kBlockBytes) + (1 << 20),
                                  GetParam());
  size_t real_alignment = 0;  // the kernel's, under OverstatedAlignment
  auto open = [&]() -> std::unique_ptr<DeviceRunner> {
    auto plan = PlanExtent(d, kPayload);
    EXPECT_TRUE(plan.ok()) << plan.status().ToString();
    if (!plan.ok()) return nullptr;
    auto file = ExtentFile::Open(d, plan->layout.total_bytes);
    EXPECT_TRUE(file.ok()) << file.status().ToString();
    if (!file.ok()) return nullptr;
    real_alignment = (*file)->direct_alignment();
    auto dev = OpenExtentOnTarget(d, *plan, std::make_unique<OverstatedAlignment>(std::move(*file)),
                                  kPoolId, ExtentTuning{});
    EXPECT_TRUE(dev.ok()) << dev.status().ToString();
    if (!dev.ok()) return nullptr;
    auto r = DeviceRunner::Start(std::move(dev).value(), 0);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(r).value() : nullptr;
  };
  AlignedBuffer src(stride * kCount + format::kBlockBytes);
  for (size_t i = 0; i < src.size(); ++i) src.data()[i] = std::byte(uint8_t(i * 29 + i / 4096));
  std::vector<SegmentIo> w = Ops(IoKind::kWrite, src.data() + 1, stride, kPayload, kCount, {});
  IoWaiter waiter;
  {
    auto runner = open();
    ASSERT_TRUE(runner);
    if (real_alignment == 1) GTEST_SKIP() << "this file takes byte-aligned O_DIRECT memory";
    EXPECT_EQ(runner->device().direct_alignment(), 1u);
    Status s = waiter.Run(*runner, w);
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(runner->device().direct_alignment(), 0u) << "direct transfers stay off";
    EXPECT_EQ(runner->counters().bounced_segments.load(), kCount);
  }
  auto runner = open();
  ASSERT_TRUE(runner);
  AlignedBuffer dst(stride * kCount + format::kBlockBytes);
  std::memset(dst.data(), 0xee, dst.size());
  std::vector<SegmentIo> r =
      Ops(IoKind::kRead, dst.data() + 1, stride, kPayload, kCount, ChecksumsOf(w));
  Status s = waiter.Run(*runner, r);
  ASSERT_TRUE(s.ok()) << s.ToString();
  for (uint32_t i = 0; i < kCount; ++i) {
    EXPECT_TRUE(r[i].bounced);
    EXPECT_EQ(std::memcmp(dst.data() + 1 + i * stride, src.data() + 1 + i * stride, kPayload), 0)
        << "segment " << i;
  }
  EXPECT_EQ(runner->device().direct_alignment(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Engines, ZeroCopyTest, ::testing::Values("uring", "psync", "spdk"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

}  // namespace
}  // namespace kvpool::testing
