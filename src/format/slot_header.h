// The 4 KiB header at the start of every slot. A slot is written in ONE
// aligned write of header + payload, so a header that decodes and whose
// payload checksum verifies describes exactly the bytes that follow it.
#pragma once

#include <cstddef>
#include <cstdint>

#include <kvpool/keys.h>
#include <kvpool/status.h>

namespace kvpool::format {

struct SlotHeader {
  ChunkKey chunk;   // zero: a bandwidth-probe slot, never recovered
  ChunkKey parent;  // zero for a prefix's first chunk
  uint32_t layer = 0;
  uint32_t length = 0;  // payload bytes
  uint64_t payload_checksum = 0;
  uint64_t sequence = 0;  // the pool's write sequence number (SegmentTag::sequence)
  uint64_t write_id = 0;  // the device's own write counter, strictly increasing
  ChunkKey pool_id;
  ChunkKey device_id;
  uint32_t slot = 0;  // index of the slot the header was written to

  bool operator==(const SlotHeader&) const = default;
};

// Fills `block` (kBlockBytes bytes): the header, checksum, zero padding.
void EncodeSlotHeader(const SlotHeader& h, std::byte* block);

// Decodes a header block. Corruption (with the reason) when the magic,
// version or checksum is wrong. Identity (pool, device, slot) is checked by
// the caller, which knows what to expect.
Status DecodeSlotHeader(const std::byte* block, SlotHeader* out);

}  // namespace kvpool::format
