#include "tier/extent/extent_recovery.h"

#include <algorithm>
#include <utility>

#include "format/constants.h"
#include "format/slot_header.h"
#include "util/checksum.h"
#include "util/errno_status.h"

namespace kvpool {
namespace {

using format::SlotEntry;
using format::SlotHeader;

SlotEntry EntryOf(const SlotHeader& h) {
  return SlotEntry{h.chunk, h.parent, h.sequence, h.write_id, h.payload_checksum,
                   h.layer, h.length};
}

class SlotScanner {
 public:
  SlotScanner(RawQueue& q, const ExtentContext& c, const LoadedCheckpoint* k)
      : queue_(q), ctx_(c), ckpt_(k) {
    if (ckpt_ != nullptr) out_.next_write_id = std::max<uint64_t>(1, ckpt_->header.next_write_id);
  }

  Result<RecoveryOutcome> Run() {
    const uint64_t slots = ctx_.layout.slot_count;
    for (uint64_t base = 0; base < slots; base += queue_.depth()) {
      KVP_RETURN_IF_ERROR(
          ScanHeaders(uint32_t(base), uint32_t(std::min(slots - base, uint64_t(queue_.depth())))));
    }
    for (size_t i = 0; i < verify_.size(); i += queue_.depth()) {
      KVP_RETURN_IF_ERROR(VerifyPayloads(i, std::min(verify_.size() - i, size_t(queue_.depth()))));
    }
    if (ckpt_ == nullptr) out_.table_changed = true;
    return std::move(out_);
  }

 private:
  SlotEntry CheckpointEntry(uint32_t slot) const {
    return ckpt_ != nullptr ? ckpt_->entries[slot] : SlotEntry{};
  }

  Status ReadError(uint32_t slot, const RawIo& io) const {
    std::string what = ctx_.what + ": recovery reading slot " + std::to_string(slot);
    if (io.result < 0) return ErrnoStatus(int(-io.result), what);
    return Status::IOError(what + ": short read");
  }

  // A header of this device and pool, for this slot, with a usable length.
  // Sets *h. Zero-key (probe) headers decode but are not "ours to keep".
  bool Decode(uint32_t slot, const std::byte* block, SlotHeader* h) {
    if (!format::DecodeSlotHeader(block, h).ok()) return false;
    if (h->pool_id != ctx_.pool_id || h->device_id != ctx_.device_id || h->slot != slot) {
      return false;
    }
    out_.next_write_id = std::max(out_.next_write_id, h->write_id + 1);
    return h->length > 0 && h->length <= ctx_.layout.slot_payload_bytes && !h->chunk.IsZero();
  }

  Status ScanHeaders(uint32_t first, uint32_t count) {
    ios_.assign(count, RawIo{});
    for (uint32_t i = 0; i < count; ++i) {
      ios_[i] = RawIo{IoKind::kRead, ctx_.layout.SlotOffset(first + i), format::kBlockBytes, i, 0};
    }
    queue_.Run(ios_);
    for (uint32_t i = 0; i < count; ++i) {
      if (ios_[i].result != format::kBlockBytes) return ReadError(first + i, ios_[i]);
      Classify(first + i, queue_.arena().buffer(i));
    }
    return Status::OK();
  }

  void Classify(uint32_t slot, const std::byte* block) {
    SlotHeader h;
    const SlotEntry e = CheckpointEntry(slot);
    if (!Decode(slot, block, &h)) return Discard(slot, e, 0);
    if (e.used() && EntryOf(h) == e) return Keep(slot, h, &out_.trusted);
    if (h.write_id <= e.write_id) return Discard(slot, e, h.write_id);  // stale
    verify_.emplace_back(slot, h);  // written after the checkpoint
  }

  Status VerifyPayloads(size_t first, size_t count) {
    ios_.assign(count, RawIo{});
    for (size_t i = 0; i < count; ++i) {
      const auto& [slot, h] = verify_[first + i];
      ios_[i] = RawIo{IoKind::kRead, ctx_.layout.SlotOffset(slot),
                      uint32_t(format::Layout::SlotIoBytes(h.length)), uint32_t(i), 0};
    }
    queue_.Run(ios_);
    for (size_t i = 0; i < count; ++i) {
      const auto& [slot, expected] = verify_[first + i];
      if (ios_[i].result != int64_t(ios_[i].length)) return ReadError(slot, ios_[i]);
      const std::byte* b = queue_.arena().buffer(uint32_t(i));
      SlotHeader h;
      bool ok = Decode(slot, b, &h) && h == expected &&
                Checksum64(b + format::kBlockBytes, h.length) == h.payload_checksum;
      if (ok) {
        Keep(slot, h, &out_.verified);
      } else {
        Discard(slot, CheckpointEntry(slot), expected.write_id);
      }
    }
    return Status::OK();
  }

  void Keep(uint32_t slot, const SlotHeader& h, uint64_t* counter) {
    ++*counter;
    const SlotEntry e = EntryOf(h);
    ctx_.table->Set(slot, e);
    out_.table_changed |= !(e == CheckpointEntry(slot));
    out_.kept.push_back(RecoveredSegment{SegmentTag{h.chunk, h.parent, h.layer, h.sequence}, slot,
                                         h.length, h.payload_checksum});
  }

  // The slot is free; nothing at or below `write_id` in it is live.
  void Discard(uint32_t slot, const SlotEntry& checkpoint_entry, uint64_t header_write_id) {
    SlotEntry free_entry;
    free_entry.write_id = std::max(checkpoint_entry.write_id, header_write_id);
    ctx_.table->Set(slot, free_entry);
    if (!(free_entry == checkpoint_entry)) {
      out_.table_changed = true;
      if (header_write_id != 0 || checkpoint_entry.used()) ++out_.discarded;
    }
  }

  RawQueue& queue_;
  const ExtentContext& ctx_;
  const LoadedCheckpoint* ckpt_;
  RecoveryOutcome out_;
  std::vector<RawIo> ios_;
  std::vector<std::pair<uint32_t, SlotHeader>> verify_;
};

}  // namespace

Result<RecoveryOutcome> RecoverSlots(RawQueue& queue, const ExtentContext& context,
                                     const LoadedCheckpoint* checkpoint) {
  return SlotScanner(queue, context, checkpoint).Run();
}

}  // namespace kvpool
