// The extent device below the pool: on-device encodings, checkpoints and
// recovery decisions, I/O errors. Drives the Device/IoQueue interface
// directly (the runner's checksum step is done by hand).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <random>

#include "extent_test_util.h"
#include "format/checkpoint.h"
#include "format/layout.h"
#include "util/aligned_buffer.h"

namespace kvpool::testing {
namespace {

constexpr uint32_t kPayload = 10000;  // not a multiple of 4096 on purpose
const ChunkKey kPool{0x1234, 0x5678};

ChunkKey KeyOf(uint32_t i) { return ChunkKey{0xabc, i + 1ull}; }

std::vector<std::byte> BytesOf(uint32_t i) {
  std::vector<std::byte> b(kPayload);
  std::mt19937_64 rng(i);
  for (auto& x : b) x = std::byte(rng());
  return b;
}

class Harness {
 public:
  Harness(const std::string& path, const std::string& engine, uint64_t slots = 16) {
    options_ = ExtentOptions("ext", path, slots * 12288, engine);
    Status s = Reopen();
    EXPECT_TRUE(s.ok()) << s.ToString();
  }
  Status Reopen() {
    queue_.reset();
    device_.reset();
    auto d = OpenExtentDevice(options_, kPayload, kPool);
    if (!d.ok()) return d.status();
    device_ = std::move(d).value();
    queue_ = std::move(device_->NewIoQueue()).value();
    return Status::OK();
  }
  void Close() {
    queue_.reset();
    device_.reset();
  }
  Device& device() { return *device_; }

  Status Write(uint32_t slot, uint32_t i, uint64_t sequence = 1) {
    std::vector<std::byte> b = BytesOf(i);
    SegmentIo op{IoKind::kWrite, slot, kPayload, b.data()};
    op.tag = SegmentTag{KeyOf(i), ChunkKey{}, 0, sequence};
    op.checksum = Checksum64(b.data(), b.size());
    SegmentIo* ops[] = {&op};
    queue_->Execute(ops);
    return op.status;
  }
  // Reads segment i from `slot` and checks its bytes (as the runner would).
  Status Read(uint32_t slot, uint32_t i) {
    std::vector<std::byte> b(kPayload), want = BytesOf(i);
    SegmentIo op{IoKind::kRead, slot, kPayload, b.data()};
    op.tag = SegmentTag{KeyOf(i), ChunkKey{}, 0, 0};
    SegmentIo* ops[] = {&op};
    queue_->Execute(ops);
    if (op.status.ok() && b != want) return Status::Corruption("payload differs");
    return op.status;
  }
  // Recovered (slot -> segment index) pairs.
  std::map<uint32_t, uint64_t> Recovered() {
    std::map<uint32_t, uint64_t> m;
    for (const RecoveredSegment& s : device_->TakeRecovered()) m[s.slot] = s.tag.chunk.lo - 1;
    return m;
  }

 private:
  DeviceOptions options_;
  std::unique_ptr<Device> device_;
  std::unique_ptr<IoQueue> queue_;
};

TEST(ExtentFormat, LayoutPlacesCheckpointsThenAlignedSlots) {
  format::Layout l = format::ComputeLayout(100 * 12288, kPayload);
  EXPECT_EQ(l.slot_payload_bytes, 12288u);
  EXPECT_EQ(l.slot_bytes, 16384u);
  EXPECT_EQ(l.slot_count, 100u);
  EXPECT_EQ(l.checkpoint_offset[0], 4096u);
  EXPECT_EQ(l.checkpoint_bytes, 4096u + 8192u);  // 100 x 64 B entries, rounded up
  EXPECT_EQ(l.checkpoint_offset[1], 4096u + l.checkpoint_bytes);
  EXPECT_EQ(l.data_offset, 1u << 20);
  EXPECT_EQ(l.total_bytes, (1u << 20) + 100u * 16384u);
  EXPECT_EQ(format::Layout::SlotIoBytes(kPayload), 16384u);
}

TEST(ExtentFormat, SlotHeaderRoundTripsAndDetectsDamage) {
  format::SlotHeader h{KeyOf(1), KeyOf(0), 7, kPayload, 99, 5, 6, kPool, ChunkKey{3, 4}, 11};
  AlignedBuffer block(format::kBlockBytes);
  format::EncodeSlotHeader(h, block.data());
  EXPECT_EQ(std::memcmp(block.data(), "KVPSLOTH", 8), 0);
  format::SlotHeader back;
  ASSERT_TRUE(format::DecodeSlotHeader(block.data(), &back).ok());
  EXPECT_EQ(back, h);
  block.data()[format::slot::kSequence] ^= std::byte{1};
  EXPECT_EQ(format::DecodeSlotHeader(block.data(), &back).code(), StatusCode::kCorruption);
}

TEST(ExtentFormat, CheckpointEntryRoundTrips) {
  format::SlotEntry e{KeyOf(2), KeyOf(1), 10, 20, 30, 3, kPayload};
  std::byte raw[format::ckpt::kEntrySize] = {};
  format::EncodeSlotEntry(e, raw);
  EXPECT_EQ(format::DecodeSlotEntry(raw), e);
}

class ExtentRecoveryTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { KVP_SKIP_WITHOUT_URING(GetParam()); }
  std::string path() const { return dir_.path() + "/x.extent"; }
  TempDir dir_;
};

TEST_P(ExtentRecoveryTest, WritesAfterTheCheckpointAreVerifiedAndKept) {
  Harness h(path(), GetParam());
  ASSERT_TRUE(h.Write(0, 0).ok());
  ASSERT_TRUE(h.device().Checkpoint().ok());
  ASSERT_TRUE(h.Write(1, 1).ok());  // newer than the checkpoint
  ASSERT_TRUE(h.Write(2, 2).ok());
  h.device().ReleaseSlot(0);  // released after the checkpoint: may come back, verified
  // A crash: no final checkpoint. Copy the file while the device is open.
  std::filesystem::copy_file(path(), path() + ".crash");
  h.Close();
  std::filesystem::rename(path() + ".crash", path());
  ASSERT_TRUE(h.Reopen().ok());
  auto got = h.Recovered();
  EXPECT_EQ(got, (std::map<uint32_t, uint64_t>{{0, 0}, {1, 1}, {2, 2}}));
  for (uint32_t i = 0; i < 3; ++i) EXPECT_TRUE(h.Read(i, i).ok()) << i;
}

TEST_P(ExtentRecoveryTest, ReleasedSlotsAreForgottenAtACleanClose) {
  Harness h(path(), GetParam());
  ASSERT_TRUE(h.Write(0, 0).ok());
  ASSERT_TRUE(h.Write(1, 1).ok());
  h.device().ReleaseSlot(1);
  h.Close();  // clean: the final checkpoint knows slot 1 is free
  ASSERT_TRUE(h.Reopen().ok());
  EXPECT_EQ(h.Recovered(), (std::map<uint32_t, uint64_t>{{0, 0}}));
}

TEST_P(ExtentRecoveryTest, TornPayloadNewerThanTheCheckpointIsDiscarded) {
  Harness h(path(), GetParam());
  ASSERT_TRUE(h.Write(0, 0).ok());
  ASSERT_TRUE(h.device().Checkpoint().ok());
  ASSERT_TRUE(h.Write(1, 1).ok());
  std::filesystem::copy_file(path(), path() + ".crash");
  h.Close();
  std::filesystem::rename(path() + ".crash", path());
  {
    ExtentImage img(path());
    img.FlipByte(1, format::kBlockBytes + kPayload - 1);  // the last payload byte
  }
  ASSERT_TRUE(h.Reopen().ok());
  EXPECT_EQ(h.Recovered(), (std::map<uint32_t, uint64_t>{{0, 0}}));
  ASSERT_TRUE(h.Write(1, 5).ok()) << "the discarded slot is reusable";
  EXPECT_TRUE(h.Read(1, 5).ok());
}

TEST_P(ExtentRecoveryTest, ATornNewestCheckpointFallsBackToTheOlderCopy) {
  Harness h(path(), GetParam());
  ASSERT_TRUE(h.Write(0, 0).ok());
  ASSERT_TRUE(h.device().Checkpoint().ok());  // generation 1: copy B
  ASSERT_TRUE(h.Write(1, 1).ok());
  ASSERT_TRUE(h.device().Checkpoint().ok());  // generation 2: copy A
  h.Close();
  {
    ExtentImage img(path());
    img.FlipAt(img.layout().checkpoint_offset[0] + format::kBlockBytes + 3);  // an entry of A
  }
  ASSERT_TRUE(h.Reopen().ok());
  EXPECT_EQ(h.Recovered(), (std::map<uint32_t, uint64_t>{{0, 0}, {1, 1}}));
  EXPECT_TRUE(h.Read(1, 1).ok());
}

TEST_P(ExtentRecoveryTest, ReadsCheckTheHeaderAgainstTheRequest) {
  Harness h(path(), GetParam());
  ASSERT_TRUE(h.Write(3, 3).ok());
  EXPECT_TRUE(h.Read(3, 3).ok());
  EXPECT_EQ(h.Read(3, 4).code(), StatusCode::kCorruption) << "another chunk key";
  EXPECT_EQ(h.Read(4, 4).code(), StatusCode::kCorruption) << "a never written slot";
}

TEST_P(ExtentRecoveryTest, AShortReadIsAnIOErrorNotBytes) {
  Harness h(path(), GetParam());
  ASSERT_TRUE(h.Write(15, 15).ok());  // the last slot
  ExtentImage img(path());
  const uint64_t cut = img.layout().SlotOffset(15) + format::kBlockBytes + 4096;
  ASSERT_EQ(::truncate(path().c_str(), off_t(cut)), 0);
  Status s = h.Read(15, 15);
  EXPECT_EQ(s.code(), StatusCode::kIOError) << s.ToString();
}

TEST_P(ExtentRecoveryTest, ASecondOpenerIsRefused) {
  Harness h(path(), GetParam());
  auto second =
      OpenExtentDevice(ExtentOptions("other", path(), 16 * 12288, GetParam()), kPayload, kPool);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("in use"), std::string::npos)
      << second.status().ToString();
}

TEST(ExtentEngines, SqpollRingRoundTripsAndSurvivesARestart) {
  KVP_SKIP_WITHOUT_URING(std::string("uring"));
  TempDir dir;
  DeviceOptions o = ExtentOptions("ext", dir.path() + "/sq.extent", 16 * 12288, "uring");
  o.sqpoll = true;
  o.queue_depth = 4;
  for (int run = 0; run < 2; ++run) {
    auto d = OpenExtentDevice(o, kPayload, kPool);
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    EXPECT_NE((*d)->Describe().find("sqpoll=yes"), std::string::npos) << (*d)->Describe();
    EXPECT_EQ((*d)->TakeRecovered().size(), run == 0 ? 0u : 10u);
    auto q = (*d)->NewIoQueue();
    ASSERT_TRUE(q.ok());
    std::vector<std::vector<std::byte>> bytes;
    std::vector<SegmentIo> ops(10);
    std::vector<SegmentIo*> ptrs;
    for (uint32_t i = 0; i < 10; ++i) {  // 10 ops on a depth-4 queue: three waves
      bytes.push_back(run == 0 ? BytesOf(i) : std::vector<std::byte>(kPayload));
      ops[i] = SegmentIo{run == 0 ? IoKind::kWrite : IoKind::kRead, i, kPayload, bytes[i].data()};
      ops[i].tag = SegmentTag{KeyOf(i), ChunkKey{}, 0, i + 1};
      ops[i].checksum = Checksum64(bytes[i].data(), kPayload);
      ptrs.push_back(&ops[i]);
    }
    (*q)->Execute(ptrs);
    for (uint32_t i = 0; i < 10; ++i) {
      EXPECT_TRUE(ops[i].status.ok()) << ops[i].status.ToString();
      EXPECT_EQ(bytes[i], BytesOf(i)) << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Engines, ExtentRecoveryTest, ::testing::Values("uring", "psync"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

}  // namespace
}  // namespace kvpool::testing
