#include <gtest/gtest.h>
#include <sched.h>

#include <algorithm>

#include "core/pool_impl.h"
#include "pool_helpers.h"
#include "test_util.h"

namespace kvpool::testing {
namespace {

// io_threads = 0 is resolved at open: DRAM regions share the usable CPUs
// (1 to 8 each), other kinds get 1, explicit values stay; and a pool with
// several workers per DRAM region reads back every byte.
TEST(Smoke, AutomaticIoThreadsShareTheCpusAmongDramRegions) {
  TempDir dir;
  PoolOptions o;
  o.shape = *ModelShape::Preset("tiny");
  o.devices.push_back(DramOptions("auto-a", 4 << 20));
  o.devices.push_back(DramOptions("auto-b", 4 << 20));
  o.devices.push_back(DramOptions("three", 4 << 20));
  o.devices.back().io_threads = 3;
  o.devices.push_back(FileOptions("files", dir.path() + "/files", 4 << 20));
  ASSERT_EQ(o.devices[0].io_threads, 0u) << "automatic is the default";
  auto pool = Pool::Open(o);
  ASSERT_TRUE(pool.ok()) << pool.status().ToString();
  auto* impl = dynamic_cast<PoolImpl*>(pool->get());
  ASSERT_NE(impl, nullptr);
  cpu_set_t set;
  CPU_ZERO(&set);
  ASSERT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);
  const uint32_t share = std::clamp<uint32_t>(CPU_COUNT(&set) / 3, 1, 8);
  EXPECT_EQ(impl->runner(0).device().options().io_threads, share);
  EXPECT_EQ(impl->runner(1).device().options().io_threads, share);
  EXPECT_EQ(impl->runner(2).device().options().io_threads, 3u);
  EXPECT_EQ(impl->runner(3).device().options().io_threads, 1u);

  auto keys = MakeKeys(o.shape, 24, 3);
  KvData src(o.shape, 24, 5);
  auto h = (*pool)->Offload(keys, src.ConstView());
  ASSERT_TRUE(h.ok());
  ASSERT_EQ(*h->Wait(), 24u);
  KvData dst(o.shape, 24);
  auto r = (*pool)->Retrieve(keys, dst.View(), [](uint32_t, size_t) {});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r->Wait(), 24u);
  EXPECT_TRUE(dst.SameAs(src, 24));
}

TEST(Smoke, RoundTripOverDramAndFiles) {
  TempDir dir;
  PoolOptions o;
  o.shape = *ModelShape::Preset("tiny");
  o.devices.push_back(DramOptions("a", 4 << 20, 1.0));
  o.devices.push_back(DramOptions("b", 4 << 20, 2.0));
  o.devices.push_back(FileOptions("files", dir.path() + "/files", 4 << 20));
  auto pool = Pool::Open(o);
  ASSERT_TRUE(pool.ok()) << pool.status().ToString();
  auto keys = MakeKeys(o.shape, 10, 1);
  KvData src(o.shape, 10, 7);
  auto h = (*pool)->Offload(keys, src.ConstView());
  ASSERT_TRUE(h.ok());
  auto stored = h->Wait();
  ASSERT_TRUE(stored.ok()) << stored.status().ToString();
  EXPECT_EQ(*stored, 10u);
  EXPECT_EQ((*pool)->Lookup(keys), 10u);
  KvData dst(o.shape, 10);
  std::vector<uint32_t> layers;
  auto r = (*pool)->Retrieve(keys, dst.View(), [&](uint32_t l, size_t) { layers.push_back(l); });
  ASSERT_TRUE(r.ok());
  auto got = r->Wait();
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, 10u);
  EXPECT_TRUE(dst.SameAs(src, 10));
  EXPECT_EQ(layers, (std::vector<uint32_t>{0, 1, 2, 3}));
  auto stats = (*pool)->Stats();
  for (auto& d : stats.devices) EXPECT_GT(d.segments, 0u) << d.name;
}

}  // namespace
}  // namespace kvpool::testing
