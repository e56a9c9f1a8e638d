#include "format/layout.h"

#include "format/constants.h"

namespace kvpool::format {
namespace {

uint64_t RoundUp64(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }

}  // namespace

uint64_t Layout::SlotIoBytes(uint64_t length) {
  return kBlockBytes + RoundUp64(length, kBlockBytes);
}

Layout ComputeLayout(uint64_t capacity_bytes, uint32_t segment_payload_bytes) {
  Layout l;
  l.slot_payload_bytes = static_cast<uint32_t>(RoundUp64(segment_payload_bytes, kBlockBytes));
  l.slot_bytes = uint64_t{kBlockBytes} + l.slot_payload_bytes;
  l.slot_count = capacity_bytes / l.slot_payload_bytes;
  l.checkpoint_bytes = kBlockBytes + RoundUp64(l.slot_count * ckpt::kEntrySize, kBlockBytes);
  l.checkpoint_offset[0] = kBlockBytes;
  l.checkpoint_offset[1] = kBlockBytes + l.checkpoint_bytes;
  l.data_offset = RoundUp64(kBlockBytes + 2 * l.checkpoint_bytes, kDataAlignment);
  l.total_bytes = l.data_offset + l.slot_count * l.slot_bytes;
  return l;
}

}  // namespace kvpool::format
