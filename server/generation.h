// What one generation request asks for and what it gets back, shared by the
// HTTP front end (http_server.h) and the batching scheduler (scheduler.h).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include <kvpool/status.h>

namespace kvpool::serve {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant", "tool"
  std::string content;
};

// OpenAI sampling parameters. temperature <= 0 means greedy (argmax).
struct SamplingParams {
  float temperature = 0.8f;
  float top_p = 0.95f;
  int32_t top_k = 40;         // <= 0: off
  uint32_t seed = 0xFFFFFFFF;  // LLAMA_DEFAULT_SEED: a random seed per request
};

struct GenerationRequest {
  std::string tenant;           // the API key's tenant salt ("" without keys)
  std::vector<int32_t> prompt;  // tokens, chat template already applied
  SamplingParams sampling;
  int32_t max_tokens = -1;         // -1: until end of generation or the slot's context
  std::vector<std::string> stop;   // generation ends before the first match
};

// llama-server's `timings` object, which clients read for cache reuse.
struct Timings {
  size_t cache_n = 0;       // prompt tokens whose KV was reused (pool or slot)
  size_t pool_n = 0;        // of which restored from the pool
  size_t prompt_n = 0;      // prompt tokens decoded
  double prompt_ms = 0;     // leaving the queue to the first token (restore + prefill)
  double queue_ms = 0;      // waiting for a free slot, before prompt_ms
  double restore_ms = 0;    // of prompt_ms, restoring from the pool
  size_t predicted_n = 0;   // tokens generated
  double predicted_ms = 0;  // first token's logits to the end
};

// One step of a response, in order: any number of kText, then exactly one
// kDone or kError.
struct GenerationEvent {
  enum class Kind { kText, kDone, kError };
  Kind kind = Kind::kText;
  std::string text;           // kText: the next piece (whole UTF-8 characters)
  std::string finish_reason;  // kDone: "stop" (EOG or a stop string) or "length"
  Timings timings;            // kDone
  Status error;               // kError
};

// The channel between the scheduler (producer) and one HTTP response
// (consumer). Thread-safe. The consumer may Cancel (client went away); the
// scheduler then frees the slot at its next step and pushes kError Aborted.
class GenerationStream {
 public:
  // Producer side.
  void Push(GenerationEvent event) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      events_.push_back(std::move(event));
    }
    cv_.notify_all();
  }
  // Consumer side: blocks until an event is there; false once the final event
  // (kDone or kError) was taken.
  bool Next(GenerationEvent* out) {
    std::unique_lock<std::mutex> lock(mu_);
    if (finished_) return false;
    cv_.wait(lock, [this] { return !events_.empty(); });
    *out = std::move(events_.front());
    events_.pop_front();
    finished_ = out->kind != GenerationEvent::Kind::kText;
    return true;
  }
  void Cancel() {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_ = true;
  }
  bool cancelled() const {
    std::lock_guard<std::mutex> lock(mu_);
    return cancelled_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<GenerationEvent> events_;
  bool finished_ = false;
  bool cancelled_ = false;
};

}  // namespace kvpool::serve
