#include "metrics.h"

#include <cstdint>
#include <string>

#include "metrics/prometheus.h"

namespace kvpool::serve {
namespace {

using metrics::Exposition;

void AddServe(Exposition& e, const SchedulerStats& s) {
  const char* c = "counter";
  const char* g = "gauge";
  e.Single("kvpool_serve_requests_total", c, "Requests admitted to the queue.", s.requests);
  e.Single("kvpool_serve_requests_rejected_queue_full_total", c,
           "Requests refused with 429 because the queue was full.", s.rejected_queue_full);
  e.Single("kvpool_serve_requests_cancelled_total", c,
           "Requests whose client went away before the end.", s.cancelled);
  e.Single("kvpool_serve_requests_failed_total", c, "Requests that ended with an error.",
           s.failed);
  e.Single("kvpool_serve_prompt_tokens_total", c, "Prompt tokens of admitted requests.",
           s.prompt_tokens);
  e.Single("kvpool_serve_cached_prompt_tokens_total", c,
           "Prompt tokens whose KV was reused (slot or pool).", s.cached_tokens);
  e.Single("kvpool_serve_pool_restored_tokens_total", c,
           "Prompt tokens whose KV was restored from the pool.", s.pool_restored_tokens);
  e.Single("kvpool_serve_slot_reused_tokens_total", c,
           "Prompt tokens whose KV was kept from the slot's previous request.",
           s.slot_reused_tokens);
  e.Single("kvpool_serve_decoded_prompt_tokens_total", c, "Prompt tokens decoded.",
           s.decoded_prompt_tokens);
  e.Single("kvpool_serve_generated_tokens_total", c, "Tokens generated.", s.generated_tokens);
  e.Single("kvpool_serve_decode_steps_total", c, "llama_decode calls over all slots.",
           s.decode_steps);
  e.Single("kvpool_serve_offloaded_chunks_total", c, "KV chunks stored into the pool.",
           s.offloaded_chunks);
  e.Single("kvpool_serve_offload_skipped_total", c,
           "KV snapshots dropped because too many bytes were waiting to be stored.",
           s.offload_skipped);
  e.Single("kvpool_serve_offload_failures_total", c, "Offloads that failed.",
           s.offload_failures);
  e.Single("kvpool_serve_restore_failures_total", c,
           "Restores from the pool that failed (the prompt was decoded instead).",
           s.restore_failures);
  e.Single("kvpool_serve_prompt_seconds_total", c,
           "Sum of the requests' times to first token.", s.prompt_seconds);
  e.Single("kvpool_serve_predicted_seconds_total", c,
           "Sum of the requests' generation times after the first token.", s.predicted_seconds);
  e.Single("kvpool_serve_queued_requests", g, "Requests waiting for a slot.",
           static_cast<uint64_t>(s.queued));
  e.Single("kvpool_serve_active_slots", g, "Slots serving a request.",
           static_cast<uint64_t>(s.active_slots));
}

}  // namespace

std::string EscapeLabelValue(std::string_view value) { return metrics::EscapeLabelValue(value); }

std::string PrometheusText(const SchedulerStats& s, const PoolStats* pool) {
  Exposition e;
  AddServe(e, s);
  if (pool != nullptr) metrics::AddPoolFamilies(e, *pool);
  return e.Take();
}

}  // namespace kvpool::serve
