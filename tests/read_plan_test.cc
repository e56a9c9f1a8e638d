// Read plans over copies, as a pure function: balance by bandwidth and
// queued work, forced segments, unusable devices.
#include <gtest/gtest.h>

#include "retrieval/read_plan.h"

namespace kvpool::testing {
namespace {

constexpr uint64_t kSeg = 1 << 20;

std::vector<uint64_t> BytesPerDevice(const std::vector<uint16_t>& plan, size_t devices) {
  std::vector<uint64_t> out(devices, 0);
  for (uint16_t d : plan) {
    if (d != kNoDevice) out[d] += kSeg;
  }
  return out;
}

TEST(PlanReads, APrefixFullyInDramStillGivesTheSsdItsShare) {
  // Device 0: SSD home at 2 GiB/s; device 1: DRAM copy at 8 GiB/s.
  std::vector<DeviceLoad> dev{{2.0, 0}, {8.0, 0}};
  std::vector<SegmentCopies> segs(32 * 40, SegmentCopies{0, 1});  // 32 layers x 40 chunks
  auto plan = PlanReads(segs, 40, dev, kSeg);
  auto bytes = BytesPerDevice(plan, 2);
  double ssd_share = double(bytes[0]) / double(bytes[0] + bytes[1]);
  EXPECT_NEAR(ssd_share, 0.2, 0.02);
  // Finish times balance: bytes / bandwidth within one segment of each other.
  EXPECT_NEAR(bytes[0] / 2.0, bytes[1] / 8.0, double(kSeg));
}

TEST(PlanReads, EveryLayerIsBalancedOnItsOwn) {
  std::vector<DeviceLoad> dev{{1.0, 0}, {3.0, 0}};
  const size_t per_layer = 16;
  std::vector<SegmentCopies> segs(8 * per_layer, SegmentCopies{0, 1});
  auto plan = PlanReads(segs, per_layer, dev, kSeg);
  for (size_t l = 0; l < 8; ++l) {
    size_t on_ssd = 0;
    for (size_t c = 0; c < per_layer; ++c) on_ssd += plan[l * per_layer + c] == 0;
    EXPECT_GE(on_ssd, 3u) << "layer " << l;
    EXPECT_LE(on_ssd, 5u) << "layer " << l;
  }
}

TEST(PlanReads, WorkAlreadyQueuedCounts) {
  // The DRAM copy's device already has 64 MiB queued: the SSD takes more.
  std::vector<DeviceLoad> idle{{2.0, 0}, {2.0, 0}};
  std::vector<DeviceLoad> busy{{2.0, 0}, {2.0, 64 * kSeg}};
  std::vector<SegmentCopies> segs(64, SegmentCopies{0, 1});
  auto a = BytesPerDevice(PlanReads(segs, 64, idle, kSeg), 2);
  auto b = BytesPerDevice(PlanReads(segs, 64, busy, kSeg), 2);
  EXPECT_EQ(a[0], a[1]);
  EXPECT_EQ(b[0], 64 * kSeg);
  EXPECT_EQ(b[1], 0u);
}

TEST(PlanReads, SegmentsWithOneCopyAreForcedAndTheRestCompensate) {
  // Half the chunks have only a home copy on device 0; the others also have
  // a DRAM copy. Equal bandwidths: the flexible half goes to DRAM.
  std::vector<DeviceLoad> dev{{1.0, 0}, {1.0, 0}};
  std::vector<SegmentCopies> segs;
  for (size_t c = 0; c < 20; ++c) segs.push_back(c < 10 ? SegmentCopies{0, kNoDevice} : SegmentCopies{0, 1});
  auto plan = PlanReads(segs, 20, dev, kSeg);
  for (size_t c = 0; c < 10; ++c) EXPECT_EQ(plan[c], 0) << c;
  for (size_t c = 10; c < 20; ++c) EXPECT_EQ(plan[c], 1) << c;
}

TEST(PlanReads, UnusableDevicesAreNeverChosen) {
  std::vector<DeviceLoad> dev{{0.0, 0}, {4.0, 0}};  // device 0 quarantined
  std::vector<SegmentCopies> segs{{0, 1}, {0, kNoDevice}, {kNoDevice, 1}};
  auto plan = PlanReads(segs, 3, dev, kSeg);
  EXPECT_EQ(plan[0], 1);
  EXPECT_EQ(plan[1], kNoDevice);
  EXPECT_EQ(plan[2], 1);
}

TEST(PlanReads, ThreeCopiesShareTheReadInProportionToBandwidth) {
  // Device 0: SSD home 4 GiB/s; 1: DRAM copy 8 GiB/s; 2: remote copy 2 GiB/s.
  std::vector<DeviceLoad> dev{{4.0, 0}, {8.0, 0}, {2.0, 0}};
  std::vector<SegmentCopies> segs(16 * 56, SegmentCopies{0, 1, 2});
  auto plan = PlanReads(segs, 56, dev, kSeg);
  auto bytes = BytesPerDevice(plan, 3);
  const double total = double(bytes[0] + bytes[1] + bytes[2]);
  EXPECT_NEAR(bytes[0] / total, 4.0 / 14, 0.02);
  EXPECT_NEAR(bytes[1] / total, 8.0 / 14, 0.02);
  EXPECT_NEAR(bytes[2] / total, 2.0 / 14, 0.02);
}

TEST(PlanReads, ARemoteOnlySegmentIsForcedOntoTheRemoteDevice) {
  // Chunk 0 lives only remotely (its home is the remote device 1); chunk 1
  // has an SSD home (0) and a remote copy (1).
  std::vector<DeviceLoad> dev{{4.0, 0}, {1.0, 0}};
  std::vector<SegmentCopies> segs{{1, kNoDevice, kNoDevice}, {0, kNoDevice, 1}};
  auto plan = PlanReads(segs, 2, dev, kSeg);
  EXPECT_EQ(plan[0], 1);
  EXPECT_EQ(plan[1], 0);  // the remote device is busy with the forced one
  dev[1].gibps = 0;       // the remote tier is out of placement
  plan = PlanReads(segs, 2, dev, kSeg);
  EXPECT_EQ(plan[0], kNoDevice);
  EXPECT_EQ(plan[1], 0);
}

}  // namespace
}  // namespace kvpool::testing
