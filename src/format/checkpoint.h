// Checkpoints: the slot table of an extent, written as two alternating
// copies (A holds even generations, B odd ones). A copy is one aligned write
// of a header block followed by one 64-byte entry per slot; a torn or stale
// copy fails its checksums and the other copy is used.
#pragma once

#include <cstddef>
#include <cstdint>

#include <kvpool/keys.h>
#include <kvpool/status.h>

namespace kvpool::format {

// What the device knows about one slot. length == 0: the slot is free and
// write_id is the last write id it held (anything on disk at or below it is
// stale). length > 0: the slot holds the segment described here.
struct SlotEntry {
  ChunkKey chunk;
  ChunkKey parent;
  uint64_t sequence = 0;
  uint64_t write_id = 0;
  uint64_t checksum = 0;
  uint32_t layer = 0;
  uint32_t length = 0;

  bool used() const { return length != 0; }
  bool operator==(const SlotEntry&) const = default;
};

struct CheckpointHeader {
  uint64_t generation = 0;  // > 0
  ChunkKey device_id;
  uint64_t slot_count = 0;
  uint64_t next_write_id = 0;
  uint64_t entries_checksum = 0;
  uint64_t written_ns = 0;
  uint32_t flags = 0;  // ckpt::kFlagClean
};

void EncodeCheckpointHeader(const CheckpointHeader& h, std::byte* block);
// Corruption when the magic, version, entry size or checksum is wrong.
Status DecodeCheckpointHeader(const std::byte* block, CheckpointHeader* out);

// Entry i lives at entries + i * ckpt::kEntrySize.
void EncodeSlotEntry(const SlotEntry& e, std::byte* at);
SlotEntry DecodeSlotEntry(const std::byte* at);

}  // namespace kvpool::format
