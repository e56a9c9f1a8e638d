// Where everything lives on an extent, derived from (capacity, segment size).
//
//   [0, 4096)                      superblock
//   [4096, 4096 + C)               checkpoint copy A (C = checkpoint_bytes)
//   [4096 + C, 4096 + 2C)          checkpoint copy B
//   [data_offset, total_bytes)     slot_count slots of slot_bytes each
//
// checkpoint_bytes = 4096 + RoundUp(64 x slot_count, 4096); data_offset is
// rounded up to 1 MiB; slot_bytes = 4096 (header) + slot_payload_bytes.
#pragma once

#include <cstdint>

namespace kvpool::format {

struct Layout {
  uint32_t slot_payload_bytes = 0;  // segment payload rounded up to 4096
  uint64_t slot_bytes = 0;          // header block + payload
  uint64_t slot_count = 0;
  uint64_t checkpoint_offset[2] = {0, 0};
  uint64_t checkpoint_bytes = 0;  // one copy: header block + entries
  uint64_t data_offset = 0;
  uint64_t total_bytes = 0;  // bytes of file or block device used

  uint64_t SlotOffset(uint64_t slot) const { return data_offset + slot * slot_bytes; }
  // Bytes of one aligned slot transfer carrying a payload of `length`.
  static uint64_t SlotIoBytes(uint64_t length);
  bool operator==(const Layout&) const = default;
};

// The layout of an extent holding capacity_bytes / RoundUp(payload, 4096)
// slots (capacity counts payload bytes, like every other device; headers and
// checkpoints come on top). Pure arithmetic, no limits checked.
// REQUIRES: segment_payload_bytes > 0.
Layout ComputeLayout(uint64_t capacity_bytes, uint32_t segment_payload_bytes);

}  // namespace kvpool::format
