// OpenAI response bodies for kvpool serve: completion objects, streaming
// chunks and their server-sent-event framing, error bodies, /v1/models and
// /slots. Generated text is not trusted to be valid UTF-8: JsonText replaces
// invalid bytes with U+FFFD instead of failing.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <kvpool/status.h>

#include "api_request.h"
#include "generation.h"
#include "scheduler.h"

namespace kvpool::serve {

enum class Endpoint { kChat, kCompletion };

// What every object and chunk of one response repeats.
struct ResponseHeader {
  Endpoint endpoint = Endpoint::kChat;
  std::string id;       // "chatcmpl-<hex>" (chat) or "cmpl-<hex>" (completions)
  int64_t created = 0;  // unix seconds
  std::string model;
  // Streaming with stream_options.include_usage: every chunk carries
  // "usage": null and a usage chunk (UsageChunk) ends the stream.
  bool include_usage = false;
};

// A header with a fresh random id and the current time.
ResponseHeader NewResponseHeader(Endpoint endpoint, std::string model, bool include_usage);

// `bytes` random bytes as lower-case hex (not for secrets).
std::string RandomHex(size_t bytes);

// The request's token counts: {prompt_tokens, completion_tokens,
// total_tokens, prompt_tokens_details: {cached_tokens}}.
nlohmann::json UsageJson(const Timings& t);
// llama-server's `timings` plus kvpool's pool_n, queue_ms and restore_ms.
nlohmann::json TimingsJson(const Timings& t);

// The whole response of a non-streaming request: a "chat.completion" or a
// "text_completion" object with one choice, usage and timings.
nlohmann::json CompletionBody(const ResponseHeader& h, std::string_view text,
                              std::string_view finish_reason, const Timings& t);

// Streaming chunks, in order: RoleChunk (chat only), ContentChunk per piece
// of text, FinishChunk (empty delta or text, finish_reason, timings), then
// UsageChunk when h.include_usage, then kSseDone.
nlohmann::json RoleChunk(const ResponseHeader& h);
nlohmann::json ContentChunk(const ResponseHeader& h, std::string_view text);
nlohmann::json FinishChunk(const ResponseHeader& h, std::string_view finish_reason,
                           const Timings& t);
nlohmann::json UsageChunk(const ResponseHeader& h, const Timings& t);

// Compact JSON text; invalid UTF-8 in strings becomes U+FFFD.
std::string JsonText(const nlohmann::json& j);

// One server-sent event: "data: <json>\n\n".
std::string SseEvent(const nlohmann::json& j);
inline constexpr std::string_view kSseDone = "data: [DONE]\n\n";

// {"error": {"message", "type", "param", "code"}}; param and code are null
// when empty.
nlohmann::json ErrorBody(const ApiError& e);

// The HTTP error for a Status from Scheduler::Submit or a generation's
// kError event: InvalidArgument 400, NotFound 404, NoSpace 413
// "context_length_exceeded", Busy 429 "queue_full", Aborted 503
// "unavailable", Unsupported 501, anything else 500 (type "server_error").
ApiError ErrorFromStatus(const Status& status);

// {"object": "list", "data": [{"id", "object": "model", "created",
// "owned_by": "kvpool"}]}.
nlohmann::json ModelsBody(std::string_view model_id, int64_t created);

// An array with one object per slot (SlotInfo's fields, plus is_processing).
nlohmann::json SlotsBody(const std::vector<SlotInfo>& slots);

}  // namespace kvpool::serve
