#include "llama_io.h"

#include <algorithm>
#include <new>
#include <string>

#include "llama.h"
#include "util/aligned_buffer.h"

namespace kvpool::llama {

Bytes::Bytes(size_t n, size_t alignment) {
  size_t allocated = 0;
  void* p = AllocateAligned(n, alignment, &allocated);
  if (p == nullptr) throw std::bad_alloc();
  data_.reset(static_cast<std::byte*>(p));
  size_ = n;
  capacity_ = n == 0 ? 0 : allocated;
}

Bytes BlobRecycler::Take(size_t n) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = kept_.begin(); it != kept_.end(); ++it) {
      if (it->capacity() < n) continue;
      Bytes b = std::move(*it);
      kept_.erase(it);
      b.Resize(n);
      return b;
    }
  }
  Bytes b(n + n / 8);
  b.Resize(n);
  return b;
}

void BlobRecycler::Give(Bytes b) {
  if (b.capacity() == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  kept_.push_back(std::move(b));
  if (kept_.size() <= max_kept_) return;
  auto smallest = std::min_element(kept_.begin(), kept_.end(), [](const Bytes& x, const Bytes& y) {
    return x.capacity() < y.capacity();
  });
  kept_.erase(smallest);
}

uint32_t ModelLayers(const llama_context* ctx) {
  return static_cast<uint32_t>(llama_model_n_layer(llama_get_model(ctx)));
}

uint32_t ModelKvHeads(const llama_context* ctx) {
  return static_cast<uint32_t>(llama_model_n_head_kv(llama_get_model(ctx)));
}

void ClearSequence(llama_context* ctx, int32_t seq_id) {
  llama_memory_seq_rm(llama_get_memory(ctx), seq_id, -1, -1);
}

Status DecodeTokens(llama_context* ctx, std::span<const int32_t> tokens, int32_t pos0,
                    int32_t seq_id, bool logits_last) {
  if (tokens.empty()) return Status::OK();
  const size_t piece = std::min<size_t>(llama_n_batch(ctx), tokens.size());
  llama_batch batch = llama_batch_init(static_cast<int32_t>(piece), 0, 1);
  Status status;
  for (size_t begin = 0; begin < tokens.size() && status.ok(); begin += piece) {
    const size_t n = std::min(piece, tokens.size() - begin);
    batch.n_tokens = static_cast<int32_t>(n);
    for (size_t i = 0; i < n; ++i) {
      batch.token[i] = tokens[begin + i];
      batch.pos[i] = pos0 + static_cast<int32_t>(begin + i);
      batch.n_seq_id[i] = 1;
      batch.seq_id[i][0] = seq_id;
      batch.logits[i] = logits_last && begin + i + 1 == tokens.size();
    }
    const int32_t rc = llama_decode(ctx, batch);
    if (rc == 1) {
      status = Status::NoSpace("llama_decode: no KV slot for " + std::to_string(n) +
                               " tokens at position " + std::to_string(pos0 + begin) + " (n_ctx " +
                               std::to_string(llama_n_ctx(ctx)) + " too small?)");
    } else if (rc != 0) {
      status = Status::Aborted("llama_decode failed with code " + std::to_string(rc));
    }
  }
  llama_batch_free(batch);
  return status;
}

Result<Snapshot> TakeSnapshot(llama_context* ctx, int32_t seq_id, BlobRecycler* recycler) {
  const size_t size = llama_state_seq_get_size(ctx, seq_id);
  if (size == 0) return Status::Aborted("llama_state_seq_get_size failed");
  Snapshot s;
  s.blob = recycler != nullptr ? recycler->Take(size) : Bytes(size);
  const size_t written =
      llama_state_seq_get_data(ctx, reinterpret_cast<uint8_t*>(s.blob.data()), size, seq_id);
  if (written != size) {
    return Status::Corruption("llama_state_seq_get_data wrote " + std::to_string(written) +
                              " bytes, llama_state_seq_get_size said " + std::to_string(size));
  }
  KVP_ASSIGN_OR_RETURN(s.state, ParseSeqState(s.blob.span(), ModelLayers(ctx)));
  return s;
}

Result<StateFormat> ProbeStateFormat(llama_context* ctx, int32_t seq_id) {
  llama_memory_t mem = llama_get_memory(ctx);
  if (mem == nullptr) return Status::Unsupported("the context has no KV memory");
  if (llama_memory_seq_pos_max(mem, seq_id) != -1) {  // the sequence shows its format
    KVP_ASSIGN_OR_RETURN(Snapshot snap, TakeSnapshot(ctx, seq_id));
    return std::move(snap.state.format);
  }
  llama_token bos = llama_vocab_bos(llama_model_get_vocab(llama_get_model(ctx)));
  const int32_t token = bos >= 0 ? bos : 0;
  KVP_RETURN_IF_ERROR(DecodeTokens(ctx, {&token, 1}, 0, seq_id, true));
  Result<Snapshot> snap = TakeSnapshot(ctx, seq_id);
  ClearSequence(ctx, seq_id);
  if (!snap.ok()) return snap.status();
  if (snap->state.cells != 1) {
    return Status::Corruption("probe: expected 1 cell in the state, found " +
                              std::to_string(snap->state.cells));
  }
  return std::move(snap->state.format);
}

Status RestoreSnapshot(llama_context* ctx, int32_t seq_id, std::span<const std::byte> blob) {
  const size_t read = llama_state_seq_set_data(ctx, reinterpret_cast<const uint8_t*>(blob.data()),
                                               blob.size(), seq_id);
  if (read != blob.size()) {
    ClearSequence(ctx, seq_id);
    return Status::Corruption("llama_state_seq_set_data took " + std::to_string(read) + " of " +
                              std::to_string(blob.size()) + " bytes");
  }
  return Status::OK();
}

}  // namespace kvpool::llama
