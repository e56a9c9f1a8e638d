#include "tier/extent/slot_table.h"

#include <sched.h>

namespace kvpool {

using format::SlotEntry;

SlotTable::SlotTable(uint32_t slots) : size_(slots), cells_(new Cell[slots]) {}

uint32_t SlotTable::Lock(Cell& c) {
  uint32_t v = c.version.load(std::memory_order_relaxed);
  while (true) {
    if ((v & 1) == 0 && c.version.compare_exchange_weak(v, v + 1, std::memory_order_acquire,
                                                        std::memory_order_relaxed)) {
      std::atomic_thread_fence(std::memory_order_release);
      return v + 1;
    }
    if (v & 1) {
      sched_yield();
      v = c.version.load(std::memory_order_relaxed);
    }
  }
}

void SlotTable::Store(Cell& c, const SlotEntry& e) {
  const uint64_t w[kWords] = {
      e.chunk.hi, e.chunk.lo, e.parent.hi, e.parent.lo,
      e.sequence, e.write_id, e.checksum,  uint64_t{e.layer} | (uint64_t{e.length} << 32)};
  for (int i = 0; i < kWords; ++i) c.word[i].store(w[i], std::memory_order_relaxed);
}

SlotEntry SlotTable::Get(uint32_t slot) const {
  const Cell& c = cells_[slot];
  uint64_t w[kWords];
  while (true) {
    uint32_t before = c.version.load(std::memory_order_acquire);
    if (before & 1) {
      sched_yield();
      continue;
    }
    for (int i = 0; i < kWords; ++i) w[i] = c.word[i].load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (c.version.load(std::memory_order_relaxed) == before) break;
  }
  SlotEntry e;
  e.chunk = {w[0], w[1]};
  e.parent = {w[2], w[3]};
  e.sequence = w[4];
  e.write_id = w[5];
  e.checksum = w[6];
  e.layer = static_cast<uint32_t>(w[7]);
  e.length = static_cast<uint32_t>(w[7] >> 32);
  return e;
}

void SlotTable::Set(uint32_t slot, const SlotEntry& entry) {
  Cell& c = cells_[slot];
  uint32_t v = Lock(c);
  Store(c, entry);
  c.version.store(v + 1, std::memory_order_release);
  MarkDirty();
}

void SlotTable::Release(uint32_t slot) {
  Cell& c = cells_[slot];
  uint32_t v = Lock(c);
  uint64_t last = c.word[7].load(std::memory_order_relaxed);
  bool was_used = (last >> 32) != 0;
  if (was_used) c.word[7].store(last & 0xffffffffu, std::memory_order_relaxed);
  c.version.store(v + 1, std::memory_order_release);
  if (was_used) MarkDirty();
}

}  // namespace kvpool
