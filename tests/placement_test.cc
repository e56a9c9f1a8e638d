// Bandwidth-aware placement: PlaceCounts (how many segments per device) and
// InterleaveCounts (in which order), as pure functions.
#include "core/placement.h"

#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <numeric>
#include <random>
#include <vector>

namespace kvpool {
namespace {

constexpr uint64_t kAmpleRoom = uint64_t{1} << 40;

uint64_t Sum(const std::vector<uint64_t>& v) {
  return std::accumulate(v.begin(), v.end(), uint64_t{0});
}

std::vector<double> RandomBandwidths(std::mt19937_64& rng, size_t n) {
  std::uniform_real_distribution<double> bw(0.05, 25.0);
  std::vector<double> b(n);
  for (double& x : b) x = bw(rng);
  return b;
}

TEST(PlaceCounts, ProportionalToBandwidthForRandomVectors) {
  std::mt19937_64 rng(42);
  for (int iter = 0; iter < 5000; ++iter) {
    size_t n = 1 + rng() % 8;
    std::vector<double> b = RandomBandwidths(rng, n);
    uint64_t k = rng() % (iter % 2 ? 50 : 100000);
    std::vector<uint64_t> room(n, kAmpleRoom);
    std::vector<uint64_t> counts = PlaceCounts(b, room, k);
    ASSERT_EQ(counts.size(), n);
    ASSERT_EQ(Sum(counts), k) << "iteration " << iter;
    double total = std::accumulate(b.begin(), b.end(), 0.0);
    for (size_t i = 0; i < n; ++i) {
      double exact = double(k) * b[i] / total;
      EXPECT_LT(std::fabs(double(counts[i]) - exact), 1.0)
          << "iteration " << iter << " device " << i << " k " << k;
      // Largest remainder: each count is the floor or the ceiling of its share.
      EXPECT_GE(double(counts[i]), std::floor(exact) - 1e-6);
      EXPECT_LE(double(counts[i]), std::ceil(exact) + 1e-6);
    }
  }
}

TEST(PlaceCounts, ExactRatiosSplitExactly) {
  std::vector<double> b = {1, 2, 4};
  std::vector<uint64_t> room(3, kAmpleRoom);
  EXPECT_EQ(PlaceCounts(b, room, 448), (std::vector<uint64_t>{64, 128, 256}));
  EXPECT_EQ(PlaceCounts(b, room, 7), (std::vector<uint64_t>{1, 2, 4}));
  EXPECT_EQ(PlaceCounts(b, room, 0), (std::vector<uint64_t>{0, 0, 0}));
}

TEST(PlaceCounts, FullDevicesGetNothing) {
  std::vector<double> b = {4, 1, 1};
  std::vector<uint64_t> room = {0, 100, 100};
  EXPECT_EQ(PlaceCounts(b, room, 10), (std::vector<uint64_t>{0, 5, 5}));
}

TEST(PlaceCounts, ZeroBandwidthDevicesAreSkipped) {
  std::vector<double> b = {0, 1, 3};
  std::vector<uint64_t> room(3, kAmpleRoom);
  EXPECT_EQ(PlaceCounts(b, room, 8), (std::vector<uint64_t>{0, 2, 6}));
  // Only zero-bandwidth or full devices: nothing is placed.
  EXPECT_EQ(PlaceCounts(std::vector<double>{0, 1}, std::vector<uint64_t>{9, 0}, 5),
            (std::vector<uint64_t>{0, 0}));
}

TEST(PlaceCounts, CappedDevicesTakeTheirRoomAndTheRestRenormalize) {
  // Device 0 would get 20 of 40 but has room for 2; the other 38 split 1:2
  // over devices 1 and 2 (12.67 / 25.33).
  std::vector<double> b = {2, 1, 2};
  std::vector<uint64_t> room = {2, 100, 100};
  std::vector<uint64_t> counts = PlaceCounts(b, room, 40);
  EXPECT_EQ(counts, (std::vector<uint64_t>{2, 13, 25}));
  // A cap that frees share for others can cap them in turn (cascade).
  counts = PlaceCounts(std::vector<double>{8, 4, 1}, std::vector<uint64_t>{1, 3, 100}, 50);
  EXPECT_EQ(counts, (std::vector<uint64_t>{1, 3, 46}));
}

TEST(PlaceCounts, SumIsMinOfKAndRoom) {
  std::vector<double> b = {1, 1, 1};
  std::vector<uint64_t> room = {3, 4, 5};
  EXPECT_EQ(PlaceCounts(b, room, 100), (std::vector<uint64_t>{3, 4, 5}));
  EXPECT_EQ(Sum(PlaceCounts(b, room, 12)), 12u);
}

// With room limits: counts never exceed room, sum to min(k, eligible room),
// and the devices left with room are split in proportion to bandwidth.
TEST(PlaceCounts, WaterFillingPropertyWithRandomRoom) {
  std::mt19937_64 rng(7);
  for (int iter = 0; iter < 5000; ++iter) {
    size_t n = 1 + rng() % 8;
    std::vector<double> b = RandomBandwidths(rng, n);
    std::vector<uint64_t> room(n);
    for (size_t i = 0; i < n; ++i) {
      if (rng() % 6 == 0) b[i] = 0;
      room[i] = rng() % 5 == 0 ? 0 : rng() % 400;
    }
    uint64_t k = rng() % 1500;
    std::vector<uint64_t> counts = PlaceCounts(b, room, k);
    uint64_t eligible = 0;
    for (size_t i = 0; i < n; ++i) {
      if (b[i] > 0) eligible += room[i];
      EXPECT_LE(counts[i], room[i]);
      if (b[i] == 0 || room[i] == 0) {
        EXPECT_EQ(counts[i], 0u) << "device " << i;
      }
    }
    ASSERT_EQ(Sum(counts), std::min(k, eligible)) << "iteration " << iter;
    // Level of the devices that still have room: segments per unit bandwidth.
    double open_bw = 0;
    uint64_t open_count = 0;
    for (size_t i = 0; i < n; ++i) {
      if (b[i] > 0 && counts[i] < room[i]) {
        open_bw += b[i];
        open_count += counts[i];
      }
    }
    if (open_bw == 0) continue;
    double level = double(open_count) / open_bw;
    for (size_t i = 0; i < n; ++i) {
      if (b[i] == 0 || room[i] == 0) continue;
      if (counts[i] < room[i]) {
        EXPECT_LT(std::fabs(double(counts[i]) - level * b[i]), 2.0)
            << "iteration " << iter << " device " << i;
      } else {
        // A full device deserved at least its room at the common level.
        EXPECT_LT(double(counts[i]), level * b[i] + 2.0) << "iteration " << iter << " device " << i;
      }
    }
  }
}

TEST(InterleaveCounts, HoldsEachIndexExactlyCountTimes) {
  std::mt19937_64 rng(11);
  for (int iter = 0; iter < 2000; ++iter) {
    size_t n = 1 + rng() % 8;
    std::vector<uint64_t> counts(n);
    for (auto& c : counts) c = rng() % 3 == 0 ? 0 : rng() % 300;
    std::vector<uint16_t> order = InterleaveCounts(counts);
    ASSERT_EQ(order.size(), Sum(counts));
    std::vector<uint64_t> seen(n, 0);
    for (uint16_t d : order) {
      ASSERT_LT(d, n);
      ++seen[d];
    }
    EXPECT_EQ(seen, counts) << "iteration " << iter;
  }
}

// In every contiguous run of the sequence, in particular in the run of one
// layer of a batch, device i holds about n * p_i segments. The smooth
// weighted round robin keeps every prefix below its share + 1 (provable:
// a device's credit never drops below -total), and in practice every window
// within 2 of its share.
TEST(InterleaveCounts, EveryWindowIsProportionallySplit) {
  std::mt19937_64 rng(12);
  double worst = 0;
  for (int iter = 0; iter < 600; ++iter) {
    size_t n = 1 + rng() % 6;
    std::vector<uint64_t> counts(n);
    for (auto& c : counts) c = rng() % (iter % 2 ? 12 : 90);
    uint64_t total = Sum(counts);
    if (total == 0) continue;
    std::vector<uint16_t> order = InterleaveCounts(counts);
    // prefix[i][t]: occurrences of i in order[0, t).
    std::vector<std::vector<uint32_t>> prefix(n, std::vector<uint32_t>(total + 1, 0));
    for (size_t t = 0; t < total; ++t) {
      for (size_t i = 0; i < n; ++i) prefix[i][t + 1] = prefix[i][t] + (order[t] == i ? 1 : 0);
    }
    for (size_t i = 0; i < n; ++i) {
      double p = double(counts[i]) / double(total);
      double prefix_excess = 0;  // most occurrences above the share in a prefix
      double window_dev = 0;     // largest |occurrences - share| in any window
      for (size_t a = 0; a <= total; ++a) {
        prefix_excess = std::max(prefix_excess, double(prefix[i][a]) - double(a) * p);
        for (size_t e = a + 1; e <= total; ++e) {
          double dev = std::fabs(double(prefix[i][e] - prefix[i][a]) - double(e - a) * p);
          window_dev = std::max(window_dev, dev);
        }
      }
      EXPECT_LT(prefix_excess, 1.0 + 1e-9) << "iteration " << iter << " device " << i;
      EXPECT_LT(window_dev, 2.0) << "iteration " << iter << " device " << i;
      worst = std::max(worst, window_dev);
    }
  }
  std::cout << "worst window deviation: " << worst << " segments\n";
}

TEST(InterleaveCounts, LayerRunsOfABatchAreSplitLikeTheBatch) {
  // 3 devices at 1:2:4, a batch of 28 chunks x 8 layers laid out layer-major:
  // each layer's run of 28 segments should hold 4 / 8 / 16 (+-1).
  std::vector<uint64_t> counts =
      PlaceCounts(std::vector<double>{1, 2, 4}, std::vector<uint64_t>(3, kAmpleRoom), 28 * 8);
  std::vector<uint16_t> order = InterleaveCounts(counts);
  ASSERT_EQ(order.size(), 28u * 8);
  for (size_t layer = 0; layer < 8; ++layer) {
    std::vector<int> per(3, 0);
    for (size_t c = 0; c < 28; ++c) ++per[order[layer * 28 + c]];
    EXPECT_NEAR(per[0], 4, 1) << "layer " << layer;
    EXPECT_NEAR(per[1], 8, 1) << "layer " << layer;
    EXPECT_NEAR(per[2], 16, 1) << "layer " << layer;
  }
}

TEST(InterleaveCounts, EmptyAndSingle) {
  EXPECT_TRUE(InterleaveCounts(std::vector<uint64_t>{}).empty());
  EXPECT_TRUE(InterleaveCounts(std::vector<uint64_t>{0, 0}).empty());
  EXPECT_EQ(InterleaveCounts(std::vector<uint64_t>{0, 3}), (std::vector<uint16_t>{1, 1, 1}));
}

}  // namespace
}  // namespace kvpool
