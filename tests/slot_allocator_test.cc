// SlotAllocator: MarkUsed (recovery at open) is O(1) per slot, and the free
// list stays exact around it.
#include <gtest/gtest.h>

#include <algorithm>
#include <thread>
#include <vector>

#include "core/slot_allocator.h"
#include "util/clock.h"

namespace kvpool {
namespace {

// The free stack hands out the lowest slot first, so it sits at the end of
// the list: marking slots in ascending order made a linear find scan the
// whole list every time (quadratic: minutes for a million slots).
TEST(SlotAllocator, MarkUsedOfAMillionSlotsIsLinear) {
  constexpr uint32_t kSlots = 1'000'000;
  SlotAllocator a(kSlots);
  Clock::time_point start = Clock::now();
  for (uint32_t s = 0; s < kSlots; s += 2) ASSERT_TRUE(a.MarkUsed(s));  // every even slot
  for (uint32_t s = 1; s < kSlots - 1000; s += 2) ASSERT_TRUE(a.MarkUsed(s));
  double seconds = SecondsSince(start);
  EXPECT_LT(seconds, 5.0) << "MarkUsed of " << kSlots << " slots";
  EXPECT_EQ(a.free_slots(), 500u);
  EXPECT_EQ(a.used_slots(), kSlots - 500);

  // Marked slots are never handed out; the 500 left are, lowest first.
  std::vector<uint32_t> got;
  EXPECT_EQ(a.Allocate(600, &got), 500u);
  ASSERT_EQ(got.size(), 500u);
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], kSlots - 999 + 2 * i);
  EXPECT_EQ(a.free_slots(), 0u);
  EXPECT_EQ(a.Allocate(1, &got), 0u);

  // Freed slots (marked or allocated) come back, once each.
  a.Free(0);
  a.Free(got[0]);
  EXPECT_EQ(a.free_slots(), 2u);
  std::vector<uint32_t> again;
  EXPECT_EQ(a.Allocate(5, &again), 2u);
  std::sort(again.begin(), again.end());
  EXPECT_EQ(again, (std::vector<uint32_t>{0, got[0]}));
  EXPECT_EQ(a.used_slots(), kSlots);
}

TEST(SlotAllocator, MarkUsedRefusesUsedAndOutOfRangeSlots) {
  SlotAllocator a(8);
  EXPECT_TRUE(a.MarkUsed(3));
  EXPECT_FALSE(a.MarkUsed(3));
  EXPECT_FALSE(a.MarkUsed(8));
  EXPECT_EQ(a.free_slots(), 7u);
  std::vector<uint32_t> got;
  EXPECT_EQ(a.Allocate(8, &got), 7u);
  EXPECT_EQ(got, (std::vector<uint32_t>{0, 1, 2, 4, 5, 6, 7}));
  EXPECT_FALSE(a.MarkUsed(0));  // allocated: not free
}

// Free before the first Allocate (recovery releasing a slot it marked) and
// MarkUsed after an Allocate (outside the intended order) keep the set exact.
TEST(SlotAllocator, FreeAndMarkUsedInterleaved) {
  SlotAllocator a(16);
  for (uint32_t s = 0; s < 16; ++s) ASSERT_TRUE(a.MarkUsed(s));
  a.Free(5);
  a.Free(9);
  EXPECT_EQ(a.free_slots(), 2u);
  std::vector<uint32_t> got;
  EXPECT_EQ(a.Allocate(1, &got), 1u);
  EXPECT_EQ(got, (std::vector<uint32_t>{5}));
  EXPECT_TRUE(a.MarkUsed(9));
  EXPECT_EQ(a.free_slots(), 0u);
  EXPECT_EQ(a.Allocate(1, &got), 0u);
  a.Free(5);
  a.Free(9);
  got.clear();
  EXPECT_EQ(a.Allocate(4, &got), 2u);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<uint32_t>{5, 9}));
}

// Concurrent Allocate/Free never hand one slot to two owners.
TEST(SlotAllocator, ConcurrentAllocateFreeHandsOutEachSlotOnce) {
  constexpr uint32_t kSlots = 4096;
  SlotAllocator a(kSlots);
  for (uint32_t s = 0; s < kSlots; s += 3) a.MarkUsed(s);
  const uint32_t initially_free = a.free_slots();
  std::vector<std::vector<uint32_t>> held(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < held.size(); ++t) {
    threads.emplace_back([&a, &held, t] {
      for (int round = 0; round < 200; ++round) {
        std::vector<uint32_t> got;
        a.Allocate(7, &got);
        for (size_t i = 0; i < got.size(); ++i) {
          if (i % 2 == 0) {
            a.Free(got[i]);
          } else {
            held[t].push_back(got[i]);
          }
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  std::vector<uint32_t> all;
  for (auto& h : held) all.insert(all.end(), h.begin(), h.end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end()) << "a slot handed out twice";
  for (uint32_t s : all) EXPECT_NE(s % 3, 0u) << "marked slot " << s << " handed out";
  EXPECT_EQ(a.free_slots(), initially_free - all.size());
}

}  // namespace
}  // namespace kvpool
