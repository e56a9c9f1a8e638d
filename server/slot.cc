#include "slot.h"

#include <algorithm>

#include "llama.h"

namespace kvpool::serve {
namespace {

void BatchAdd(llama_batch& batch, int32_t token, int32_t pos, int32_t seq, bool logits) {
  const int32_t i = batch.n_tokens++;
  batch.token[i] = token;
  batch.pos[i] = pos;
  batch.n_seq_id[i] = 1;
  batch.seq_id[i][0] = seq;
  batch.logits[i] = logits ? 1 : 0;
}

}  // namespace

void SamplerDeleter::operator()(llama_sampler* s) const { llama_sampler_free(s); }

SamplerPtr MakeSampler(const SamplingParams& p) {
  llama_sampler_chain_params cp = llama_sampler_chain_default_params();
  cp.no_perf = true;
  SamplerPtr chain(llama_sampler_chain_init(cp));
  if (p.temperature <= 0) {
    llama_sampler_chain_add(chain.get(), llama_sampler_init_greedy());
    return chain;
  }
  if (p.top_k > 0) llama_sampler_chain_add(chain.get(), llama_sampler_init_top_k(p.top_k));
  if (p.top_p < 1.0f) llama_sampler_chain_add(chain.get(), llama_sampler_init_top_p(p.top_p, 1));
  llama_sampler_chain_add(chain.get(), llama_sampler_init_temp(p.temperature));
  llama_sampler_chain_add(chain.get(), llama_sampler_init_dist(p.seed));
  return chain;
}

size_t CommonPrefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  const size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

size_t Slot::ReusableTokens(const Job& job) const {
  const std::vector<int32_t>& prompt = job.request.prompt;
  if (cached_tenant_ != job.request.tenant || prompt.empty()) return 0;
  return std::min(CommonPrefix(cached_, prompt), prompt.size() - 1);
}

void Slot::Begin(Job job, Clock::time_point started, size_t kept, size_t reused,
                 size_t from_pool, double restore_ms, int32_t default_max_tokens) {
  const std::vector<int32_t>& prompt = job.request.prompt;
  cached_.assign(prompt.begin(), prompt.begin() + static_cast<ptrdiff_t>(kept));
  cached_tenant_ = job.request.tenant;
  cached_prompt_tokens_ = prompt.size();
  sampler_ = MakeSampler(job.request.sampling);
  stop_.emplace(job.request.stop);
  max_tokens_ = job.request.max_tokens > 0 ? job.request.max_tokens : default_max_tokens;
  next_token_ = -1;
  generated_ = 0;
  logits_index_.reset();
  started_ = started;
  timings_ = Timings{};
  timings_.cache_n = reused + from_pool;
  timings_.pool_n = from_pool;
  timings_.queue_ms = std::chrono::duration<double, std::milli>(started_ - job.submitted).count();
  timings_.restore_ms = restore_ms;
  job_.emplace(std::move(job));
  state_ = State::kPrefill;
}

size_t Slot::AddToBatch(llama_batch& batch, size_t budget) {
  logits_index_.reset();
  if (budget == 0 || state_ == State::kIdle) return 0;
  if (state_ == State::kGenerating) {
    logits_index_ = batch.n_tokens;
    BatchAdd(batch, next_token_, static_cast<int32_t>(cached_.size()), id_, true);
    cached_.push_back(next_token_);
    return 1;
  }
  const std::vector<int32_t>& prompt = job_->request.prompt;
  const size_t n = std::min(budget, pending_prompt());
  for (size_t i = 0; i < n; ++i) {
    const bool last = cached_.size() + 1 == prompt.size();
    if (last) logits_index_ = batch.n_tokens;
    BatchAdd(batch, prompt[cached_.size()], static_cast<int32_t>(cached_.size()), id_, last);
    cached_.push_back(prompt[cached_.size()]);
  }
  return n;
}

bool Slot::SampleAndEmit(llama_context* ctx, const ServeModel& model) {
  const int32_t token = llama_sampler_sample(sampler_.get(), ctx, *logits_index_);
  if (state_ == State::kPrefill) {
    state_ = State::kGenerating;
    first_token_ = Clock::now();
    timings_.prompt_n = job_->request.prompt.size() - timings_.cache_n;
    timings_.prompt_ms = MsSince(started_);
  }
  if (model.IsEndOfGeneration(token)) {
    Finish("stop", Status::OK());
    return true;
  }
  ++generated_;
  StopMatcher::Output out = stop_->Feed(model.Piece(token));
  if (!out.text.empty()) {
    job_->stream->Push({GenerationEvent::Kind::kText, std::move(out.text), "", {}, Status::OK()});
  }
  if (out.stopped) {
    Finish("stop", Status::OK());
    return true;
  }
  if (static_cast<int32_t>(generated_) >= max_tokens_ || cached_.size() + 1 >= n_ctx_) {
    Finish("length", Status::OK());
    return true;
  }
  next_token_ = token;
  return false;
}

void Slot::Finish(const std::string& finish_reason, const Status& error) {
  if (!job_) return;
  GenerationStream& stream = *job_->stream;
  if (error.ok()) {
    std::string tail = stop_->Finish();
    if (!tail.empty()) {
      stream.Push({GenerationEvent::Kind::kText, std::move(tail), "", {}, Status::OK()});
    }
    timings_.predicted_n = generated_;
    timings_.predicted_ms = state_ == State::kGenerating ? MsSince(first_token_) : 0;
    stream.Push({GenerationEvent::Kind::kDone, "", finish_reason, timings_, Status::OK()});
  } else {
    stream.Push({GenerationEvent::Kind::kError, "", "", timings_, error});
  }
  job_.reset();
  sampler_.reset();
  stop_.reset();
  state_ = State::kIdle;
}

SlotInfo Slot::Info() const {
  SlotInfo info;
  info.id = id_;
  info.state = state_ == State::kIdle ? "idle" : state_ == State::kPrefill ? "prefill" : "generating";
  info.n_ctx = n_ctx_;
  info.n_past = cached_.size();
  if (job_) {
    info.prompt_tokens = job_->request.prompt.size();
    info.cached_tokens = timings_.cache_n;
    info.generated = generated_;
  }
  return info;
}

}  // namespace kvpool::serve
