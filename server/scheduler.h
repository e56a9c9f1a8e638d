// The batching scheduler of kvpool serve: N slots over one llama_context,
// continuous batching (one llama_decode per step over every active slot), and
// the kvpool Pool as the prompt cache.
//
// A request waits in a bounded queue for a free slot. When it gets one, its
// prompt's cached prefix is reused: kept from the slot's own KV when the slot
// last held the same tokens (as llama-server does), otherwise restored from
// the pool (longest prefix, to the token with partial chunks, from any slot's
// or any earlier process's chunks). The rest of the prompt is decoded in the
// shared batch, at most n_batch tokens per step over all slots, interleaved
// with the slots that are generating. When a request ends, what its slot
// holds (prompt and generation) is offloaded in the background, with a
// partial chunk at the prompt's end and one at the generation's.
//
// Thread-safety: Submit, Slots, Stats and Shutdown may be called from any
// thread; one internal thread owns the llama_context.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <kvpool/pool.h>
#include <kvpool/result.h>

#include "generation.h"
#include "model.h"

namespace kvpool::serve {

struct SchedulerOptions {
  int32_t slots = 1;           // -np: parallel sequences
  uint32_t n_ctx = 4096;       // -c: total context, split evenly over the slots
  uint32_t n_batch = 2048;     // -b: tokens per llama_decode over all slots
  uint32_t n_ubatch = 512;     // -ub
  int32_t threads = 2;         // -t
  size_t max_queued = 64;      // requests waiting for a slot beyond this: 429
  int32_t default_max_tokens = 256;  // when a request gives none (-n)
  // The prompt cache. Null: no cross-request cache beyond the slots' own KV.
  Pool* pool = nullptr;
  uint64_t model_fingerprint = 0;  // XXH3 of the GGUF (kvpool::llama::FingerprintModelFile)
  // Bytes of KV snapshots waiting to be offloaded, over all slots; a
  // snapshot beyond it is dropped (counted in offload_skipped).
  size_t max_pending_offload_bytes = size_t{1} << 30;
  // Partial chunks (kvpool_llama.h): restore a cached prompt to the token.
  bool partial_chunks = true;
};

struct SlotInfo {
  int32_t id = 0;
  std::string state;      // "idle", "prefill", "generating"
  size_t n_ctx = 0;       // the slot's context
  size_t n_past = 0;      // tokens in its KV
  size_t prompt_tokens = 0;
  size_t cached_tokens = 0;
  size_t generated = 0;
};

struct SchedulerStats {
  uint64_t requests = 0;           // admitted
  uint64_t rejected_queue_full = 0;
  uint64_t cancelled = 0;          // client went away
  uint64_t failed = 0;             // ended with kError other than a cancel
  uint64_t prompt_tokens = 0;
  uint64_t cached_tokens = 0;      // slot reuse + pool
  uint64_t pool_restored_tokens = 0;
  uint64_t slot_reused_tokens = 0;
  uint64_t decoded_prompt_tokens = 0;
  uint64_t generated_tokens = 0;
  uint64_t decode_steps = 0;
  uint64_t offloaded_chunks = 0;
  uint64_t offload_skipped = 0;
  uint64_t offload_failures = 0;
  uint64_t restore_failures = 0;
  size_t queued = 0;
  size_t active_slots = 0;
  double prompt_seconds = 0;   // sum of TTFTs
  double predicted_seconds = 0;
};

class Scheduler {
 public:
  // Creates the llama_context (n_ctx, n_seq_max = slots, unified KV cache,
  // flash attention, F16 KV) and one pool connector per slot, then starts the
  // batching thread. Errors: InvalidArgument naming the option (slots < 1,
  // n_ctx / slots below one chunk), Aborted when llama.cpp cannot make the
  // context, the connector's errors when the pool's shape does not hold this
  // model's KV (open the pool with kvpool::llama::Connector::KvShape).
  static Result<std::unique_ptr<Scheduler>> Create(const ServeModel& model,
                                                   const SchedulerOptions& options);
  ~Scheduler();  // Shutdown()
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a request. Errors: InvalidArgument (empty prompt), NoSpace when
  // the prompt does not fit a slot's context (message gives both numbers),
  // Busy when the queue is full, Aborted after Shutdown.
  Result<std::shared_ptr<GenerationStream>> Submit(GenerationRequest request);

  // Tokens one slot holds: prompt + generated must stay below it.
  uint32_t slot_context() const;
  std::vector<SlotInfo> Slots() const;
  SchedulerStats Stats() const;
  const SchedulerOptions& options() const;

  // Stops admitting, ends the requests in the slots and the queued ones
  // (kError Aborted; the slots' KV is still offloaded), waits for the
  // background offloads. Idempotent.
  void Shutdown();

  class Impl;

 private:
  explicit Scheduler(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The chunk size a kvpool serve pool uses (tokens), unless configured.
constexpr uint32_t kDefaultServeChunkTokens = 256;

}  // namespace kvpool::serve
