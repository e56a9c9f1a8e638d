// The hot set's policy as a pure data structure: admission, promotion on a
// second read, the memory of evicted keys, and scan resistance.
#include <gtest/gtest.h>

#include "core/hot_set.h"

namespace kvpool::testing {
namespace {

ChunkKey Key(uint64_t i) { return ChunkKey{i + 1, 0x5eed}; }

std::vector<ChunkKey> Keys(uint64_t from, uint64_t count) {
  std::vector<ChunkKey> out;
  for (uint64_t i = 0; i < count; ++i) out.push_back(Key(from + i));
  return out;
}

CopyRef ReadyCopy() {
  auto c = std::make_shared<CopySet>(1, nullptr);
  c->ready.store(true);
  return c;
}

// What a pool does for an offload of `keys`: room, then a copy each.
void Offload(HotSet& hot, const std::vector<ChunkKey>& keys) {
  (void)hot.MakeRoom(keys.size());
  for (const ChunkKey& k : keys) (void)hot.AttachCopy(k, ReadyCopy());
}

// What a pool does for a read of `keys`: admitted chunks get a copy.
size_t Read(HotSet& hot, const std::vector<ChunkKey>& keys) {
  std::vector<HotSet::Access> a = hot.NoteRead(keys, hot.max_admit());
  size_t from_copy = 0, admits = 0;
  for (const auto& x : a) {
    from_copy += x.copy ? 1 : 0;
    admits += x.admit ? 1 : 0;
  }
  (void)hot.MakeRoom(admits);
  for (size_t i = 0; i < keys.size(); ++i) {
    if (a[i].admit) (void)hot.AttachCopy(keys[i], ReadyCopy());
  }
  return from_copy;
}

TEST(HotSet, OffloadAdmitsToProbationAndASecondReadProtects) {
  HotSet hot(16, 0.25);
  Offload(hot, Keys(0, 2));
  EXPECT_EQ(hot.counts().probation, 2u);
  EXPECT_EQ(Read(hot, Keys(0, 2)), 2u);  // first read: served from the copies
  EXPECT_EQ(hot.counts().protected_, 0u);
  Read(hot, Keys(0, 2));
  EXPECT_EQ(hot.counts().protected_, 2u);
  EXPECT_EQ(hot.counts().probation, 0u);
}

TEST(HotSet, CopiesNeverExceedTheCapacity) {
  HotSet hot(10, 0.25);
  for (uint64_t d = 0; d < 20; ++d) {
    Offload(hot, Keys(d * 3, 3));
    Read(hot, Keys(d * 3, 3));
    EXPECT_LE(hot.counts().copies, 10u);
  }
}

TEST(HotSet, AOneOffScanDoesNotFlushChunksReadTwice) {
  HotSet hot(16, 0.25);  // probation 4, protected 12
  const auto hot_doc = Keys(0, 10);
  Offload(hot, hot_doc);
  Read(hot, hot_doc);
  Read(hot, hot_doc);  // read twice: protected
  // A long one-off document: offloaded and read once, 5x the whole cache.
  for (uint64_t i = 0; i < 80; i += 4) {
    Offload(hot, Keys(1000 + i, 4));
    Read(hot, Keys(1000 + i, 4));
  }
  EXPECT_EQ(Read(hot, hot_doc), hot_doc.size()) << "the scan displaced protected chunks";
}

TEST(HotSet, AChunkReadAgainAfterEvictionIsPromotedStraightToProtected) {
  HotSet hot(4, 0.25);  // probation 1, protected 3
  Offload(hot, Keys(0, 1));
  Read(hot, Keys(0, 1));  // reads = 1
  Offload(hot, Keys(1, 4));  // pushes key 0 out to the ghost list
  EXPECT_FALSE(hot.HasReadyCopy(Key(0)));
  Read(hot, Keys(0, 1));  // second read, remembered: admitted into protected
  EXPECT_TRUE(hot.HasReadyCopy(Key(0)));
  EXPECT_GE(hot.counts().protected_, 1u);
}

TEST(HotSet, AnEmptySetAdmitsUpToItsFreeSpace) {
  HotSet hot(8, 0.25);  // probation 2, but 8 free
  EXPECT_EQ(hot.max_admit(), 8u);
  auto a = hot.NoteRead(Keys(0, 10), hot.max_admit());
  for (size_t i = 0; i < 10; ++i) EXPECT_EQ(a[i].admit, i < 8) << i;
}

TEST(HotSet, AFullSetAdmitsProbationsShareFavouringTheHead) {
  HotSet hot(8, 0.25);  // probation 2
  Offload(hot, Keys(100, 8));  // full
  EXPECT_EQ(hot.max_admit(), 2u);
  auto a = hot.NoteRead(Keys(0, 6), hot.max_admit());
  ASSERT_EQ(a.size(), 6u);
  EXPECT_TRUE(a[0].admit);
  EXPECT_TRUE(a[1].admit);
  for (size_t i = 2; i < 6; ++i) EXPECT_FALSE(a[i].admit) << i;
}

TEST(HotSet, ACopyStillBeingWrittenIsNeitherReadNorAdmittedTwice) {
  HotSet hot(8, 0.25);
  auto pending = std::make_shared<CopySet>(1, nullptr);
  (void)hot.AttachCopy(Key(0), pending);
  auto a = hot.NoteRead(Keys(0, 1), 8);
  EXPECT_FALSE(a[0].copy);
  EXPECT_FALSE(a[0].admit);
  pending->ready.store(true);
  EXPECT_TRUE(hot.NoteRead(Keys(0, 1), 8)[0].copy);
}

TEST(HotSet, DropAndForget) {
  HotSet hot(8, 0.25);
  auto c = ReadyCopy();
  (void)hot.AttachCopy(Key(0), c);
  EXPECT_FALSE(hot.DropCopy(Key(0), nullptr));
  EXPECT_EQ(hot.DropCopy(Key(0), c.get()), c);
  EXPECT_EQ(hot.counts().copies, 0u);
  (void)hot.AttachCopy(Key(1), ReadyCopy());
  EXPECT_TRUE(hot.Forget(Key(1)));
  EXPECT_FALSE(hot.Forget(Key(1)));
  EXPECT_EQ(hot.counts().copies, 0u);
}

TEST(HotSet, ZeroCapacityAdmitsNothing) {
  HotSet hot(0, 0.25);
  auto a = hot.NoteRead(Keys(0, 3), 3);
  for (const auto& x : a) EXPECT_FALSE(x.admit);
  EXPECT_EQ(hot.max_admit(), 0u);
}

}  // namespace
}  // namespace kvpool::testing
