// The "keeps what it is given" scenario: documents larger in total than
// DRAM offloaded into DRAM regions + one extent, then read back before and
// after a restart. Shared by copies_test (small) and copies_large_test (the
// full 4 GiB case).
#pragma once

#include <gtest/gtest.h>

#include <iostream>

#include "extent_test_util.h"
#include "pool_helpers.h"

namespace kvpool::testing {

struct KeepScenario {
  ModelShape shape;
  size_t docs = 0;
  size_t chunks_per_doc = 0;
  uint64_t dram_bytes = 0;    // per region; two regions
  uint64_t extent_bytes = 0;
};

inline PoolOptions KeepScenarioOptions(const KeepScenario& s, const std::string& dir) {
  PoolOptions o;
  o.shape = s.shape;
  o.devices.push_back(DramOptions("dram0", s.dram_bytes, 8.0));
  o.devices.push_back(DramOptions("dram1", s.dram_bytes, 8.0));
  const std::string engine = UringStatus().ok() ? "uring" : "psync";
  o.devices.push_back(ExtentOptions("ssd0", dir + "/ssd0.extent", s.extent_bytes, engine, 2.0));
  return o;
}

// Every chunk of every document: found by Lookup and read back byte-exact.
// Returns the number of chunks that were.
inline size_t CountKeptChunks(Pool& pool, const KeepScenario& s) {
  size_t kept = 0;
  for (size_t d = 0; d < s.docs; ++d) {
    auto keys = MakeKeys(s.shape, s.chunks_per_doc, 100 + d);
    KvData want(s.shape, s.chunks_per_doc, 200 + d);
    KvData got(s.shape, s.chunks_per_doc);
    const size_t found = pool.Lookup(keys);
    RetrieveOutcome r = RetrieveSync(pool, keys, got);
    EXPECT_TRUE(r.valid.ok());
    const size_t read = r.valid.ok() ? std::min(*r.valid, found) : 0;
    EXPECT_TRUE(got.SameAs(want, read)) << "document " << d << ": wrong bytes";
    if (got.SameAs(want, read)) kept += read;
  }
  return kept;
}

inline void RunKeepScenario(const KeepScenario& s) {
  TempDir dir;
  const PoolOptions o = KeepScenarioOptions(s, dir.path());
  const size_t total = s.docs * s.chunks_per_doc;
  {
    auto pool = Pool::Open(o);
    ASSERT_TRUE(pool.ok()) << pool.status().ToString();
    for (size_t d = 0; d < s.docs; ++d) {
      auto keys = MakeKeys(s.shape, s.chunks_per_doc, 100 + d);
      KvData data(s.shape, s.chunks_per_doc, 200 + d);
      auto stored = OffloadSync(**pool, keys, data.ConstView());
      ASSERT_TRUE(stored.ok()) << stored.status().ToString();
      EXPECT_EQ(*stored, s.chunks_per_doc) << "document " << d;
    }
    PoolStats st = (*pool)->Stats();
    EXPECT_EQ(st.evicted_chunks, 0u);
    EXPECT_EQ(st.chunks, total);
    ASSERT_EQ(st.devices.size(), 3u);
    EXPECT_EQ(st.devices[0].role, "cache");
    EXPECT_EQ(st.devices[2].role, "home");
    EXPECT_EQ(st.devices[2].segments, total * s.shape.layers) << "not every chunk is home";
    const size_t before = CountKeptChunks(**pool, s);
    std::cout << "before the restart: " << before << " of " << total << " chunks kept, "
              << (*pool)->Stats().copy_chunks << " with a DRAM copy" << std::endl;
    EXPECT_EQ(before, total);
  }
  auto pool = Pool::Open(o);  // the restart
  ASSERT_TRUE(pool.ok()) << pool.status().ToString();
  EXPECT_EQ((*pool)->Stats().recovered_chunks, total);
  const size_t after = CountKeptChunks(**pool, s);
  std::cout << "after the restart: " << after << " of " << total << " chunks kept" << std::endl;
  EXPECT_EQ(after, total);
}

}  // namespace kvpool::testing
