#include <gtest/gtest.h>

#include "test_util.h"

namespace kvpool::testing {
namespace {

TEST(Smoke, RoundTripOverDramAndFiles) {
  TempDir dir;
  PoolOptions o;
  o.shape = *ModelShape::Preset("tiny");
  o.devices.push_back(DramOptions("a", 4 << 20, 1.0));
  o.devices.push_back(DramOptions("b", 4 << 20, 2.0));
  DeviceOptions f;
  f.kind = DeviceKind::kFilePerChunk;
  f.name = "files";
  f.path = dir.path() + "/files";
  f.capacity_bytes = 4 << 20;
  f.bandwidth_gibps = 1.0;
  o.devices.push_back(f);
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
