#include "tier/extent/checkpointer.h"

#include <ctime>

#include "format/constants.h"
#include "util/checksum.h"
#include "util/log.h"

namespace kvpool {
namespace {

using format::kBlockBytes;

uint64_t NowUnixNs() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

// Decodes one copy held in `buf`; nullopt when it is not a valid copy for us.
std::optional<LoadedCheckpoint> DecodeCopy(const std::byte* buf, const format::Layout& layout,
                                           const ChunkKey& device_id) {
  LoadedCheckpoint c;
  if (!format::DecodeCheckpointHeader(buf, &c.header).ok()) return std::nullopt;
  if (c.header.device_id != device_id || c.header.slot_count != layout.slot_count ||
      c.header.generation == 0) {
    return std::nullopt;
  }
  const std::byte* entries = buf + kBlockBytes;
  const size_t bytes = layout.slot_count * format::ckpt::kEntrySize;
  if (Checksum64(entries, bytes) != c.header.entries_checksum) return std::nullopt;
  c.entries.resize(layout.slot_count);
  for (uint64_t i = 0; i < layout.slot_count; ++i) {
    c.entries[i] = format::DecodeSlotEntry(entries + i * format::ckpt::kEntrySize);
  }
  return c;
}

}  // namespace

Result<std::optional<LoadedCheckpoint>> LoadCheckpoint(BlockTarget& target,
                                                       const format::Layout& layout,
                                                       const ChunkKey& device_id,
                                                       const std::string& what) {
  AlignedBuffer buf(layout.checkpoint_bytes);
  std::optional<LoadedCheckpoint> best;
  for (int copy = 0; copy < 2; ++copy) {
    KVP_RETURN_IF_ERROR(target.ReadAt(buf.data(), buf.size(), layout.checkpoint_offset[copy],
                                      what + ": reading checkpoint " + "AB"[copy]));
    std::optional<LoadedCheckpoint> c = DecodeCopy(buf.data(), layout, device_id);
    if (c && (!best || c->header.generation > best->header.generation)) best = std::move(c);
  }
  return best;
}

Status EraseCheckpoints(BlockTarget& target, const format::Layout& layout,
                        const std::string& what) {
  AlignedBuffer zero(kBlockBytes);
  for (int copy = 0; copy < 2; ++copy) {
    KVP_RETURN_IF_ERROR(target.WriteAt(zero.data(), zero.size(), layout.checkpoint_offset[copy],
                                       what + ": erasing checkpoint"));
  }
  return Status::OK();
}

Checkpointer::Checkpointer(BlockTarget* target, const format::Layout& layout,
                           const ChunkKey& device_id, SlotTable* table,
                           const std::atomic<uint64_t>* next_write_id, uint64_t generation,
                           std::string what)
    : target_(target),
      layout_(layout),
      device_id_(device_id),
      table_(table),
      next_write_id_(next_write_id),
      what_(std::move(what)),
      generation_(generation) {}

Checkpointer::~Checkpointer() { Stop(); }

Status Checkpointer::Write(bool clean) {
  std::lock_guard<std::mutex> lock(write_mu_);
  Status s = WriteLocked(clean);
  if (!s.ok()) {
    table_->MarkDirty();  // try again next time
    if (!warned_) log::Warn(s.ToString());
    warned_ = true;
  }
  return s;
}

Status Checkpointer::WriteLocked(bool clean) {
  table_->TakeDirty();  // changes from here on make the table dirty again
  if (buffer_.size() == 0) buffer_ = AlignedBuffer(layout_.checkpoint_bytes);
  std::byte* entries = buffer_.data() + kBlockBytes;
  for (uint32_t i = 0; i < table_->size(); ++i) {
    format::EncodeSlotEntry(table_->Get(i), entries + uint64_t{i} * format::ckpt::kEntrySize);
  }
  format::CheckpointHeader h;
  h.generation = generation_ + 1;
  h.device_id = device_id_;
  h.slot_count = layout_.slot_count;
  h.next_write_id = next_write_id_->load(std::memory_order_acquire);  // after the snapshot
  h.entries_checksum = Checksum64(entries, layout_.slot_count * format::ckpt::kEntrySize);
  h.written_ns = NowUnixNs();
  h.flags = clean ? format::ckpt::kFlagClean : 0;
  format::EncodeCheckpointHeader(h, buffer_.data());
  // Every slot write the snapshot counts completed before this point.
  KVP_RETURN_IF_ERROR(target_->Flush(what_ + ": before checkpoint"));
  KVP_RETURN_IF_ERROR(target_->WriteAt(buffer_.data(), layout_.checkpoint_bytes,
                                       layout_.checkpoint_offset[h.generation % 2],
                                       what_ + ": writing checkpoint"));
  KVP_RETURN_IF_ERROR(target_->Flush(what_ + ": checkpoint"));
  generation_ = h.generation;
  return Status::OK();
}

void Checkpointer::StartBackground(std::chrono::milliseconds interval) {
  thread_ = std::thread([this, interval] { Loop(interval); });
}

void Checkpointer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Checkpointer::Loop(std::chrono::milliseconds interval) {
  std::unique_lock<std::mutex> lock(mu_);
  while (!cv_.wait_for(lock, interval, [&] { return stop_; })) {
    if (!table_->dirty()) continue;
    lock.unlock();
    (void)Write(false);  // failures are logged once and retried
    lock.lock();
  }
}

}  // namespace kvpool
