#include "format/slot_header.h"

#include <cstring>

#include "format/codec.h"
#include "format/constants.h"
#include "util/checksum.h"

namespace kvpool::format {

void EncodeSlotHeader(const SlotHeader& h, std::byte* b) {
  std::memset(b, 0, kBlockBytes);
  PutMagic(b, kSlotMagic);
  Put32(b, slot::kVersion, kFormatVersion);
  Put32(b, slot::kHeaderBytes, kBlockBytes);
  PutKey(b, slot::kChunk, h.chunk);
  PutKey(b, slot::kParent, h.parent);
  Put32(b, slot::kLayer, h.layer);
  Put32(b, slot::kLength, h.length);
  Put64(b, slot::kPayloadSum, h.payload_checksum);
  Put64(b, slot::kSequence, h.sequence);
  Put64(b, slot::kWriteId, h.write_id);
  PutKey(b, slot::kPoolId, h.pool_id);
  PutKey(b, slot::kDeviceId, h.device_id);
  Put32(b, slot::kSlotIndex, h.slot);
  Put64(b, slot::kChecksum, Checksum64(b, slot::kChecksum));
}

Status DecodeSlotHeader(const std::byte* b, SlotHeader* h) {
  if (!HasMagic(b, kSlotMagic)) return Status::Corruption("no slot header magic");
  if (Get64(b, slot::kChecksum) != Checksum64(b, slot::kChecksum)) {
    return Status::Corruption("slot header checksum mismatch");
  }
  if (Get32(b, slot::kVersion) != kFormatVersion || Get32(b, slot::kHeaderBytes) != kBlockBytes) {
    return Status::Corruption("slot header of unknown format version " +
                              std::to_string(Get32(b, slot::kVersion)));
  }
  h->chunk = GetKey(b, slot::kChunk);
  h->parent = GetKey(b, slot::kParent);
  h->layer = Get32(b, slot::kLayer);
  h->length = Get32(b, slot::kLength);
  h->payload_checksum = Get64(b, slot::kPayloadSum);
  h->sequence = Get64(b, slot::kSequence);
  h->write_id = Get64(b, slot::kWriteId);
  h->pool_id = GetKey(b, slot::kPoolId);
  h->device_id = GetKey(b, slot::kDeviceId);
  h->slot = Get32(b, slot::kSlotIndex);
  return Status::OK();
}

}  // namespace kvpool::format
