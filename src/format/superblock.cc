#include "format/superblock.h"

#include <cstring>

#include "format/codec.h"
#include "format/constants.h"
#include "util/checksum.h"

namespace kvpool::format {

void EncodeSuperblock(const Superblock& s, std::byte* b) {
  std::memset(b, 0, kBlockBytes);
  PutMagic(b, kSuperblockMagic);
  Put32(b, sb::kVersion, kFormatVersion);
  Put32(b, sb::kBytes, kBlockBytes);
  Put64(b, sb::kFlags, 0);
  PutKey(b, sb::kPoolId, s.pool_id);
  PutKey(b, sb::kDeviceId, s.device_id);
  const Layout& l = s.layout;
  Put32(b, sb::kSlotPayload, l.slot_payload_bytes);
  Put32(b, sb::kSlotHeaderBytes, kBlockBytes);
  Put64(b, sb::kSlotCount, l.slot_count);
  Put64(b, sb::kSlotBytes, l.slot_bytes);
  Put64(b, sb::kCheckpointA, l.checkpoint_offset[0]);
  Put64(b, sb::kCheckpointB, l.checkpoint_offset[1]);
  Put64(b, sb::kCheckpointBytes, l.checkpoint_bytes);
  Put64(b, sb::kDataOffset, l.data_offset);
  Put64(b, sb::kTotalBytes, l.total_bytes);
  Put64(b, sb::kCreatedNs, s.created_ns);
  PutText(b, sb::kDeviceName, sb::kTextBytes, s.device_name);
  PutText(b, sb::kCreatedBy, sb::kTextBytes, s.created_by);
  Put64(b, sb::kChecksum, Checksum64(b, sb::kChecksum));
}

DecodedSuperblock DecodeSuperblock(const std::byte* b) {
  DecodedSuperblock out;
  if (!HasMagic(b, kSuperblockMagic)) return out;
  out.state = SuperblockState::kCorrupt;
  if (Get64(b, sb::kChecksum) != Checksum64(b, sb::kChecksum)) {
    out.problem = "superblock checksum mismatch";
    return out;
  }
  Superblock& s = out.sb;
  s.version = Get32(b, sb::kVersion);
  if (s.version != kFormatVersion || Get32(b, sb::kBytes) != kBlockBytes ||
      Get32(b, sb::kSlotHeaderBytes) != kBlockBytes) {
    out.problem = "format version " + std::to_string(s.version) +
                  " is not readable by this kvpool (it reads version " +
                  std::to_string(kFormatVersion) + ")";
    return out;
  }
  s.pool_id = GetKey(b, sb::kPoolId);
  s.device_id = GetKey(b, sb::kDeviceId);
  Layout& l = s.layout;
  l.slot_payload_bytes = Get32(b, sb::kSlotPayload);
  l.slot_bytes = Get64(b, sb::kSlotBytes);
  l.slot_count = Get64(b, sb::kSlotCount);
  l.checkpoint_offset[0] = Get64(b, sb::kCheckpointA);
  l.checkpoint_offset[1] = Get64(b, sb::kCheckpointB);
  l.checkpoint_bytes = Get64(b, sb::kCheckpointBytes);
  l.data_offset = Get64(b, sb::kDataOffset);
  l.total_bytes = Get64(b, sb::kTotalBytes);
  s.created_ns = Get64(b, sb::kCreatedNs);
  s.device_name = GetText(b, sb::kDeviceName, sb::kTextBytes);
  s.created_by = GetText(b, sb::kCreatedBy, sb::kTextBytes);
  if (l.slot_payload_bytes == 0 || l.slot_payload_bytes % kBlockBytes != 0 ||
      !(ComputeLayout(l.slot_count * l.slot_payload_bytes, l.slot_payload_bytes) == l)) {
    out.problem = "superblock describes an inconsistent layout";
    return out;
  }
  out.state = SuperblockState::kValid;
  return out;
}

}  // namespace kvpool::format
