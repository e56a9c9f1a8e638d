#include "format/checkpoint.h"

#include <cstring>

#include "format/codec.h"
#include "format/constants.h"
#include "util/checksum.h"

namespace kvpool::format {

void EncodeCheckpointHeader(const CheckpointHeader& h, std::byte* b) {
  std::memset(b, 0, kBlockBytes);
  PutMagic(b, kCheckpointMagic);
  Put32(b, ckpt::kVersion, kFormatVersion);
  Put32(b, ckpt::kEntryBytes, ckpt::kEntrySize);
  Put64(b, ckpt::kGeneration, h.generation);
  PutKey(b, ckpt::kDeviceId, h.device_id);
  Put64(b, ckpt::kSlotCount, h.slot_count);
  Put64(b, ckpt::kNextWriteId, h.next_write_id);
  Put64(b, ckpt::kEntriesSum, h.entries_checksum);
  Put64(b, ckpt::kWrittenNs, h.written_ns);
  Put32(b, ckpt::kFlags, h.flags);
  Put64(b, ckpt::kChecksum, Checksum64(b, ckpt::kChecksum));
}

Status DecodeCheckpointHeader(const std::byte* b, CheckpointHeader* h) {
  if (!HasMagic(b, kCheckpointMagic)) return Status::Corruption("no checkpoint magic");
  if (Get64(b, ckpt::kChecksum) != Checksum64(b, ckpt::kChecksum)) {
    return Status::Corruption("checkpoint header checksum mismatch");
  }
  if (Get32(b, ckpt::kVersion) != kFormatVersion ||
      Get32(b, ckpt::kEntryBytes) != ckpt::kEntrySize) {
    return Status::Corruption("checkpoint of unknown format version");
  }
  h->generation = Get64(b, ckpt::kGeneration);
  h->device_id = GetKey(b, ckpt::kDeviceId);
  h->slot_count = Get64(b, ckpt::kSlotCount);
  h->next_write_id = Get64(b, ckpt::kNextWriteId);
  h->entries_checksum = Get64(b, ckpt::kEntriesSum);
  h->written_ns = Get64(b, ckpt::kWrittenNs);
  h->flags = Get32(b, ckpt::kFlags);
  return Status::OK();
}

void EncodeSlotEntry(const SlotEntry& e, std::byte* at) {
  PutKey(at, ckpt::kEntryChunk, e.chunk);
  PutKey(at, ckpt::kEntryParent, e.parent);
  Put64(at, ckpt::kEntrySequence, e.sequence);
  Put64(at, ckpt::kEntryWriteId, e.write_id);
  Put64(at, ckpt::kEntrySum, e.checksum);
  Put32(at, ckpt::kEntryLayer, e.layer);
  Put32(at, ckpt::kEntryLength, e.length);
}

SlotEntry DecodeSlotEntry(const std::byte* at) {
  SlotEntry e;
  e.chunk = GetKey(at, ckpt::kEntryChunk);
  e.parent = GetKey(at, ckpt::kEntryParent);
  e.sequence = Get64(at, ckpt::kEntrySequence);
  e.write_id = Get64(at, ckpt::kEntryWriteId);
  e.checksum = Get64(at, ckpt::kEntrySum);
  e.layer = Get32(at, ckpt::kEntryLayer);
  e.length = Get32(at, ckpt::kEntryLength);
  return e;
}

}  // namespace kvpool::format
