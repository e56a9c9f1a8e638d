// One slot of the scheduler: a sequence of the shared llama_context, the
// request it serves, its sampler and its stop-string matcher. Used only by
// the scheduler's thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "generation.h"
#include "model.h"
#include "scheduler.h"
#include "stop_matcher.h"

struct llama_batch;
struct llama_context;
struct llama_sampler;

namespace kvpool::serve {

using Clock = std::chrono::steady_clock;

inline double MsSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// A request admitted by Submit, waiting for or holding a slot.
struct Job {
  GenerationRequest request;
  std::shared_ptr<GenerationStream> stream;
  Clock::time_point submitted;
};

struct SamplerDeleter {
  void operator()(llama_sampler* s) const;
};
using SamplerPtr = std::unique_ptr<llama_sampler, SamplerDeleter>;

// temperature <= 0: greedy; otherwise top-k, top-p, temperature, then a
// draw seeded by `seed` (LLAMA_DEFAULT_SEED: a random seed).
SamplerPtr MakeSampler(const SamplingParams& p);

// Tokens two sequences share from the start.
size_t CommonPrefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b);

class Slot {
 public:
  enum class State { kIdle, kPrefill, kGenerating };

  Slot(int32_t id, uint32_t n_ctx) : id_(id), n_ctx_(n_ctx) {}

  int32_t id() const { return id_; }
  uint32_t n_ctx() const { return n_ctx_; }
  State state() const { return state_; }
  bool idle() const { return state_ == State::kIdle; }

  // What the sequence's KV holds, and whose it is (tenant), kept after a
  // request so that the next one with the same prefix reuses it.
  const std::vector<int32_t>& cached() const { return cached_; }
  const std::string& cached_tenant() const { return cached_tenant_; }
  // The last request's prompt length: cached() is that prompt (or, cancelled
  // during prefill, a part of it) followed by what it generated.
  size_t cached_prompt_tokens() const { return cached_prompt_tokens_; }
  // Tokens of the job's prompt that a slot-reuse would keep.
  size_t ReusableTokens(const Job& job) const;

  // Takes `job`, which left the queue at `started`; the sequence holds job's
  // prompt tokens [0, kept) already (reused or restored: `reused` of them,
  // `from_pool` restored from the pool in `restore_ms`).
  void Begin(Job job, Clock::time_point started, size_t kept, size_t reused, size_t from_pool,
             double restore_ms, int32_t default_max_tokens);

  // Prefill: the prompt tokens not yet in the KV.
  size_t pending_prompt() const { return job_->request.prompt.size() - cached_.size(); }
  // Appends up to `budget` tokens of the remaining prompt (or, generating,
  // the last sampled token) to `batch`, the last one with logits when it
  // ends the prompt. Returns the number of tokens added.
  size_t AddToBatch(llama_batch& batch, size_t budget);
  // The batch index of this slot's logits in the step just decoded, if any.
  std::optional<int32_t> logits_index() const { return logits_index_; }

  // After a decode whose batch carried this slot's logits: samples, streams
  // the text, and returns true when the request is finished (then Finish).
  bool SampleAndEmit(llama_context* ctx, const ServeModel& model);
  // Ends the request: kDone with `finish_reason`, or kError when `error` is
  // not OK. The slot keeps its KV (cached()) and becomes idle.
  void Finish(const std::string& finish_reason, const Status& error);

  // Forgets the KV (after a failed decode left it unknown).
  void Clear() {
    cached_.clear();
    cached_tenant_.clear();
    cached_prompt_tokens_ = 0;
  }

  bool cancelled() const { return job_ && job_->stream->cancelled(); }
  const std::string& tenant() const { return job_->request.tenant; }
  SlotInfo Info() const;
  const Timings& timings() const { return timings_; }

 private:
  const int32_t id_;
  const uint32_t n_ctx_;
  State state_ = State::kIdle;
  std::vector<int32_t> cached_;  // tokens in the KV, positions 0..
  std::string cached_tenant_;
  size_t cached_prompt_tokens_ = 0;
  std::optional<Job> job_;
  SamplerPtr sampler_;
  std::optional<StopMatcher> stop_;
  int32_t max_tokens_ = 0;
  int32_t next_token_ = -1;  // sampled, not yet decoded
  size_t generated_ = 0;
  std::optional<int32_t> logits_index_;
  Clock::time_point started_;
  Clock::time_point first_token_;
  Timings timings_;
};

}  // namespace kvpool::serve
