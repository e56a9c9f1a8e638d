// Bandwidth-aware placement pays off: three devices throttled to 1:2:4 finish
// a retrieval at about the same time, and faster than the fastest alone.
#include <gtest/gtest.h>

#include <algorithm>
#include <iostream>

#include "test_util.h"
#include "util/clock.h"

namespace kvpool::testing {
namespace {

constexpr double kGibps[] = {0.25, 0.5, 1.0};
constexpr size_t kChunks = 56;  // x 8 layers x 256 KiB = 112 MiB, split 64/128/256 segments
constexpr int kRepetitions = 3;

ModelShape Shape() {
  ModelShape s;
  s.name = "bandwidth-test";
  s.layers = 8;
  s.kv_heads = 8;
  s.head_dim = 64;
  s.chunk_tokens = 128;  // 2 x 128 x 8 x 64 x 2 B = 256 KiB per segment
  return s;
}

DeviceOptions Throttled(std::string name, double gibps) {
  DeviceOptions d = DramOptions(std::move(name), 128ull << 20, gibps);
  d.throttle_gibps = gibps;
  d.io_threads = 1;
  return d;
}

std::unique_ptr<Pool> OpenPool(std::vector<DeviceOptions> devices) {
  PoolOptions o;
  o.shape = Shape();
  o.devices = std::move(devices);
  auto pool = Pool::Open(o);
  EXPECT_TRUE(pool.ok()) << pool.status().ToString();
  return pool.ok() ? std::move(pool).value() : nullptr;
}

struct Timing {
  double wall = 0;
  std::vector<double> busy;  // per device, seconds
};

// Retrieves every key once; wall time and each device's busy-time delta.
Timing TimeRetrieve(Pool& pool, const std::vector<ChunkKey>& keys, KvData& dst) {
  PoolStats before = pool.Stats();
  Clock::time_point start = Clock::now();
  auto h = pool.Retrieve(keys, dst.View(), nullptr);
  EXPECT_TRUE(h.ok());
  auto got = h->Wait();
  Timing t;
  t.wall = SecondsSince(start);
  EXPECT_TRUE(got.ok());
  EXPECT_EQ(*got, keys.size());
  PoolStats after = pool.Stats();
  for (size_t d = 0; d < after.devices.size(); ++d) {
    t.busy.push_back(after.devices[d].busy_seconds - before.devices[d].busy_seconds);
  }
  return t;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

TEST(Bandwidth, DevicesFinishTogetherAndBeatTheFastestAlone) {
  auto pooled = OpenPool(
      {Throttled("slow", kGibps[0]), Throttled("mid", kGibps[1]), Throttled("fast", kGibps[2])});
  auto alone = OpenPool({Throttled("fast-alone", kGibps[2])});
  ASSERT_TRUE(pooled && alone);

  auto keys = MakeKeys(Shape(), kChunks, 1);
  KvData src(Shape(), kChunks, 2);
  for (Pool* p : {pooled.get(), alone.get()}) {
    auto h = p->Offload(keys, src.ConstView());
    ASSERT_TRUE(h.ok());
    auto stored = h->Wait();
    ASSERT_TRUE(stored.ok()) << stored.status().ToString();
    ASSERT_EQ(*stored, kChunks);
  }
  PoolStats placed = pooled->Stats();
  ASSERT_EQ(placed.devices.size(), 3u);
  EXPECT_EQ(placed.devices[0].segments, 64u);
  EXPECT_EQ(placed.devices[1].segments, 128u);
  EXPECT_EQ(placed.devices[2].segments, 256u);

  KvData dst(Shape(), kChunks);
  std::vector<double> pooled_wall, alone_wall;
  std::vector<std::vector<double>> busy(3);
  for (int rep = 0; rep < kRepetitions; ++rep) {
    Timing p = TimeRetrieve(*pooled, keys, dst);
    ASSERT_TRUE(dst.SameAs(src, kChunks));
    Timing a = TimeRetrieve(*alone, keys, dst);
    ASSERT_TRUE(dst.SameAs(src, kChunks));
    pooled_wall.push_back(p.wall);
    alone_wall.push_back(a.wall);
    for (size_t d = 0; d < 3; ++d) busy[d].push_back(p.busy[d]);
    std::cout << "rep " << rep << ": pooled " << p.wall << " s (busy " << p.busy[0] << " / "
              << p.busy[1] << " / " << p.busy[2] << " s), fastest alone " << a.wall << " s\n";
  }
  double b[3] = {Median(busy[0]), Median(busy[1]), Median(busy[2])};
  double wall = Median(pooled_wall), fastest = Median(alone_wall);
  double busy_max = std::max({b[0], b[1], b[2]}), busy_min = std::min({b[0], b[1], b[2]});
  std::cout << "median busy seconds: slow(0.25 GiB/s) " << b[0] << ", mid(0.5 GiB/s) " << b[1]
            << ", fast(1.0 GiB/s) " << b[2] << "; max/min " << busy_max / busy_min << "\n"
            << "median wall: pooled " << wall << " s, fastest alone " << fastest << " s, ratio "
            << wall / fastest << " (ideal 4/7 = 0.571)\n";
  EXPECT_LE(busy_max, 1.2 * busy_min) << "devices should be busy for about the same time";
  EXPECT_LE(wall, 0.70 * fastest) << "pooling 1:2:4 should cut the time to about 4/7";
}

}  // namespace
}  // namespace kvpool::testing
