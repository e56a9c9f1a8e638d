#include "scheduler.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "kvpool_llama.h"
#include "llama.h"
#include "slot.h"

namespace kvpool::serve {

class Scheduler::Impl {
 public:
  Impl(const ServeModel& model, SchedulerOptions options, llama_context* ctx)
      : model_(model),
        options_(std::move(options)),
        ctx_(ctx),
        batch_(llama_batch_init(static_cast<int32_t>(options_.n_batch), 0, 1)) {}
  ~Impl() {
    Shutdown();
    connectors_.clear();  // waits for their offloads, before the context goes
    llama_batch_free(batch_);
    llama_free(ctx_);
  }

  Status Init();
  Result<std::shared_ptr<GenerationStream>> Submit(GenerationRequest request);
  std::vector<SlotInfo> Slots() const {
    std::lock_guard<std::mutex> lock(mu_);
    return slot_infos_;
  }
  SchedulerStats Stats() const;
  const SchedulerOptions& options() const { return options_; }
  uint32_t slot_context() const { return llama_n_ctx_seq(ctx_); }
  void Shutdown();

 private:
  void Loop();
  // Moves queued jobs into idle slots while there are both; jobs whose
  // client went away are ended on the way.
  void Admit(std::unique_lock<std::mutex>& lock);
  bool AnyIdleSlot() const {
    return std::any_of(slots_.begin(), slots_.end(), [](const Slot& s) { return s.idle(); });
  }
  Slot& ChooseSlot(const Job& job);
  void Start(Slot& slot, Job job);
  // One llama_decode over every active slot; false when no slot has work.
  bool Step();
  void EndCancelled();
  // After a slot's request ended: its KV's new chunks go to the pool.
  void Ended(Slot& slot, bool cancelled, bool failed);
  void Publish();  // slot_infos_ and gauges, for Slots() / Stats()
  llama::Connector* ConnectorOf(const Slot& slot) {
    return connectors_.empty() ? nullptr : connectors_[static_cast<size_t>(slot.id())].get();
  }

  const ServeModel& model_;
  const SchedulerOptions options_;
  llama_context* const ctx_;
  llama_batch batch_;
  std::vector<Slot> slots_;
  std::vector<std::unique_ptr<llama::Connector>> connectors_;  // one per slot, or none
  size_t round_robin_ = 0;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  bool stopping_ = false;
  SchedulerStats stats_;
  std::vector<SlotInfo> slot_infos_;
  std::thread thread_;
};

Status Scheduler::Impl::Init() {
  const uint32_t n_slot = llama_n_ctx_seq(ctx_);
  for (int32_t i = 0; i < options_.slots; ++i) slots_.emplace_back(i, n_slot);
  if (options_.pool != nullptr) {
    for (int32_t i = 0; i < options_.slots; ++i) {
      llama::ConnectorOptions co;
      co.model_fingerprint = options_.model_fingerprint;
      co.model_path = model_.path();
      co.seq_id = i;
      co.offload = false;  // the scheduler offloads when a request ends
      co.partial_chunks = options_.partial_chunks;
      co.max_pending_offload_bytes =
          std::max<size_t>(1, options_.max_pending_offload_bytes / static_cast<size_t>(options_.slots));
      KVP_ASSIGN_OR_RETURN(std::unique_ptr<llama::Connector> c,
                           llama::Connector::Create(ctx_, *options_.pool, co));
      connectors_.push_back(std::move(c));
    }
  }
  Publish();
  thread_ = std::thread([this] { Loop(); });
  return Status::OK();
}

Result<std::shared_ptr<GenerationStream>> Scheduler::Impl::Submit(GenerationRequest request) {
  if (request.prompt.empty()) return Status::InvalidArgument("the prompt has no tokens");
  const size_t limit = slot_context();
  if (request.prompt.size() + 1 > limit) {
    return Status::NoSpace("the prompt has " + std::to_string(request.prompt.size()) +
                           " tokens; a slot holds " + std::to_string(limit) +
                           " (-c " + std::to_string(options_.n_ctx) + " over -np " +
                           std::to_string(options_.slots) + "), and one must be generated");
  }
  auto stream = std::make_shared<GenerationStream>();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return Status::Aborted("the server is shutting down");
    if (queue_.size() >= options_.max_queued) {
      ++stats_.rejected_queue_full;
      return Status::Busy("the request queue is full (" + std::to_string(queue_.size()) +
                          " waiting, --max-queue " + std::to_string(options_.max_queued) + ")");
    }
    queue_.push_back(Job{std::move(request), stream, Clock::now()});
    ++stats_.requests;
    stats_.queued = queue_.size();
  }
  cv_.notify_all();
  return stream;
}

SchedulerStats Scheduler::Impl::Stats() const {
  SchedulerStats s;
  {
    std::lock_guard<std::mutex> lock(mu_);
    s = stats_;
  }
  for (const auto& c : connectors_) {
    const llama::ConnectorStats cs = c->Stats();
    s.offloaded_chunks += cs.offloaded_chunks;
    s.offload_skipped += cs.offload_skipped;
    s.offload_failures += cs.offload_failures;
    s.restore_failures += cs.restore_failures;
  }
  return s;
}

void Scheduler::Impl::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  for (auto& c : connectors_) c->Flush();
}

void Scheduler::Impl::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    Admit(lock);
    const bool busy = std::any_of(slots_.begin(), slots_.end(), [](const Slot& s) { return !s.idle(); });
    if (stopping_) break;
    if (!busy) {
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      continue;
    }
    lock.unlock();
    EndCancelled();
    Step();
    lock.lock();
    Publish();
  }
  // Stopping: queued jobs fail, active ones end (their KV is still offloaded).
  for (Job& job : queue_) {
    job.stream->Push({GenerationEvent::Kind::kError, "", "", {},
                      Status::Aborted("the server is shutting down")});
  }
  queue_.clear();
  lock.unlock();
  for (Slot& slot : slots_) {
    if (slot.idle()) continue;
    slot.Finish("", Status::Aborted("the server is shutting down"));
    Ended(slot, false, true);
  }
  lock.lock();
  Publish();
}

void Scheduler::Impl::Admit(std::unique_lock<std::mutex>& lock) {
  while (!queue_.empty() && !stopping_) {
    const bool cancelled = queue_.front().stream->cancelled();
    if (!cancelled && !AnyIdleSlot()) return;
    Job job = std::move(queue_.front());
    queue_.pop_front();
    stats_.queued = queue_.size();
    if (cancelled) {
      ++stats_.cancelled;
      job.stream->Push({GenerationEvent::Kind::kError, "", "", {},
                        Status::Aborted("the client closed the connection")});
      continue;
    }
    lock.unlock();
    Slot& slot = ChooseSlot(job);
    Start(slot, std::move(job));
    lock.lock();
  }
}

// The idle slot to serve `job`: the one whose KV it reuses most, provided it
// keeps at least half of what that slot holds (llama-server's similarity
// rule); otherwise the one holding the fewest tokens, so that a short prompt
// does not wipe out a long document another request may come back for (the
// pool still has it, but the slot's copy costs nothing to reuse).
Slot& Scheduler::Impl::ChooseSlot(const Job& job) {
  Slot* best_reuse = nullptr;
  Slot* emptiest = nullptr;
  size_t most = 0;
  for (Slot& s : slots_) {
    if (!s.idle()) continue;
    const size_t reuse = s.ReusableTokens(job);
    if (reuse > 0 && 2 * reuse >= s.cached().size() && reuse > most) {
      best_reuse = &s;
      most = reuse;
    }
    if (emptiest == nullptr || s.cached().size() < emptiest->cached().size()) emptiest = &s;
  }
  return best_reuse != nullptr ? *best_reuse : *emptiest;
}

void Scheduler::Impl::Start(Slot& slot, Job job) {
  const Clock::time_point started = Clock::now();
  const std::vector<int32_t>& prompt = job.request.prompt;
  const size_t prompt_tokens = prompt.size();
  llama::Connector* conn = ConnectorOf(slot);
  const size_t reusable = slot.ReusableTokens(job);
  // One pool search per request: what it found decides between the slot's
  // own cells and the pool, and is what the restore reads.
  const Clock::time_point search = Clock::now();
  const llama::CachedPrefix in_pool =
      conn != nullptr ? conn->FindCached(prompt, job.request.tenant) : llama::CachedPrefix{};
  const double search_ms = MsSince(search);
  size_t kept = 0, reused = 0, from_pool = 0;
  double restore_ms = 0;
  if (in_pool.tokens > reusable) {
    Result<llama::PrefillResult> r = conn->Restore(prompt, job.request.tenant, in_pool);
    if (r.ok()) {
      kept = from_pool = r->restored_tokens;
      // The search is part of the restore (its lookup_seconds is the search
      // again only when the hint did not match).
      restore_ms = search_ms + (r->lookup_seconds + r->load_seconds()) * 1e3;
    } else {
      llama_memory_seq_rm(llama_get_memory(ctx_), slot.id(), -1, -1);
    }
  } else {
    kept = reused = reusable;
    llama_memory_seq_rm(llama_get_memory(ctx_), slot.id(), static_cast<llama_pos>(kept), -1);
  }
  slot.Begin(std::move(job), started, kept, reused, from_pool, restore_ms,
             options_.default_max_tokens);
  std::lock_guard<std::mutex> lock(mu_);
  stats_.prompt_tokens += prompt_tokens;
  stats_.cached_tokens += kept;
  stats_.pool_restored_tokens += from_pool;
  stats_.slot_reused_tokens += reused;
}

bool Scheduler::Impl::Step() {
  batch_.n_tokens = 0;
  size_t generating = 0;
  for (Slot& s : slots_) {  // generating slots: one token each, first
    if (s.state() == Slot::State::kGenerating) generating += s.AddToBatch(batch_, 1);
  }
  size_t prompt_tokens = 0;
  const size_t n = slots_.size();
  for (size_t k = 0; k < n; ++k) {  // prefill: the rest, rotating who goes first
    Slot& s = slots_[(round_robin_ + k) % n];
    if (s.state() != Slot::State::kPrefill) continue;
    prompt_tokens += s.AddToBatch(batch_, options_.n_batch - generating - prompt_tokens);
  }
  ++round_robin_;
  if (batch_.n_tokens == 0) return false;
  const int32_t rc = llama_decode(ctx_, batch_);
  if (rc != 0) {
    const Status error = Status::Aborted("llama_decode failed (" + std::to_string(rc) + ")");
    for (Slot& s : slots_) {
      if (s.idle()) continue;
      s.Finish("", error);
      llama_memory_seq_rm(llama_get_memory(ctx_), s.id(), -1, -1);
      s.Clear();
      Ended(s, false, true);
    }
    return true;
  }
  for (Slot& s : slots_) {  // idle slots were not in the batch; their index is stale
    if (s.idle() || !s.logits_index()) continue;
    if (s.SampleAndEmit(ctx_, model_)) Ended(s, false, false);
  }
  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.decode_steps;
  stats_.decoded_prompt_tokens += prompt_tokens;
  stats_.generated_tokens += generating;
  return true;
}

void Scheduler::Impl::EndCancelled() {
  for (Slot& s : slots_) {
    if (s.idle() || !s.cancelled()) continue;
    s.Finish("", Status::Aborted("the client closed the connection"));
    Ended(s, true, false);
  }
}

void Scheduler::Impl::Ended(Slot& slot, bool cancelled, bool failed) {
  const Timings t = slot.timings();
  llama::Connector* conn = ConnectorOf(slot);
  if (conn != nullptr && !slot.cached().empty()) {
    // Failures are counted by the connector. The partial chunk at the
    // prompt's end lets the same prompt come back restored to its last token.
    (void)conn->Offload(slot.cached(), slot.cached_tenant(), slot.cached_prompt_tokens());
  }
  std::lock_guard<std::mutex> lock(mu_);
  stats_.cancelled += cancelled ? 1 : 0;
  stats_.failed += failed ? 1 : 0;
  stats_.prompt_seconds += t.prompt_ms / 1e3;
  stats_.predicted_seconds += t.predicted_ms / 1e3;
}

void Scheduler::Impl::Publish() {
  slot_infos_.clear();
  size_t active = 0;
  for (const Slot& s : slots_) {
    slot_infos_.push_back(s.Info());
    active += s.idle() ? 0 : 1;
  }
  stats_.active_slots = active;
  stats_.queued = queue_.size();
}

// ---- Scheduler ----

Result<std::unique_ptr<Scheduler>> Scheduler::Create(const ServeModel& model,
                                                     const SchedulerOptions& o) {
  if (o.slots < 1) return Status::InvalidArgument("-np " + std::to_string(o.slots) + ": must be >= 1");
  if (o.n_batch < static_cast<uint32_t>(o.slots)) {
    return Status::InvalidArgument("-b " + std::to_string(o.n_batch) +
                                   ": must be at least -np (" + std::to_string(o.slots) + ")");
  }
  const uint32_t per_slot = o.n_ctx / static_cast<uint32_t>(o.slots);
  const uint32_t chunk = o.pool != nullptr ? o.pool->options().shape.chunk_tokens : 1;
  if (per_slot < std::max<uint32_t>(chunk + 1, 16)) {
    return Status::InvalidArgument("-c " + std::to_string(o.n_ctx) + " over -np " +
                                   std::to_string(o.slots) + " leaves " + std::to_string(per_slot) +
                                   " tokens per slot; need more than one chunk (" +
                                   std::to_string(chunk) + ")");
  }
  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = per_slot * static_cast<uint32_t>(o.slots);
  cp.n_batch = o.n_batch;
  cp.n_ubatch = std::min(o.n_ubatch, o.n_batch);
  cp.n_seq_max = static_cast<uint32_t>(o.slots);
  cp.kv_unified = false;  // a stream per slot: its cells hold positions 0.. in order
  cp.n_threads = cp.n_threads_batch = o.threads;
  cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_ENABLED;
  cp.no_perf = true;
  llama_context* ctx = llama_init_from_model(model.get(), cp);
  if (ctx == nullptr) {
    return Status::Aborted("llama.cpp cannot create a context of " + std::to_string(cp.n_ctx) +
                           " tokens over " + std::to_string(o.slots) + " slots");
  }
  auto impl = std::make_unique<Impl>(model, o, ctx);
  KVP_RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<Scheduler>(new Scheduler(std::move(impl)));
}

Scheduler::Scheduler(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Scheduler::~Scheduler() = default;
Result<std::shared_ptr<GenerationStream>> Scheduler::Submit(GenerationRequest r) {
  return impl_->Submit(std::move(r));
}
uint32_t Scheduler::slot_context() const { return impl_->slot_context(); }
std::vector<SlotInfo> Scheduler::Slots() const { return impl_->Slots(); }
SchedulerStats Scheduler::Stats() const { return impl_->Stats(); }
const SchedulerOptions& Scheduler::options() const { return impl_->options(); }
void Scheduler::Shutdown() { impl_->Shutdown(); }

}  // namespace kvpool::serve
