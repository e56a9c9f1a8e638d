#include "api_response.h"

#include <chrono>
#include <random>
#include <utility>

namespace kvpool::serve {
namespace {

using json = nlohmann::json;

double PerSecond(size_t n, double ms) { return ms > 0 ? 1e3 * static_cast<double>(n) / ms : 0; }
double PerToken(size_t n, double ms) { return n > 0 ? ms / static_cast<double>(n) : 0; }

const char* ObjectName(const ResponseHeader& h, bool chunk) {
  if (h.endpoint == Endpoint::kCompletion) return "text_completion";
  return chunk ? "chat.completion.chunk" : "chat.completion";
}

json Envelope(const ResponseHeader& h, bool chunk, json choices) {
  json j = {{"id", h.id},
            {"object", ObjectName(h, chunk)},
            {"created", h.created},
            {"model", h.model},
            {"choices", std::move(choices)}};
  if (chunk && h.include_usage) j["usage"] = nullptr;
  return j;
}

json FinishReason(std::string_view finish_reason) {
  return finish_reason.empty() ? json(nullptr) : json(std::string(finish_reason));
}

// One streaming choice: a delta (chat) or a text piece (completions).
json StreamChoice(const ResponseHeader& h, json delta, std::string_view text,
                  std::string_view finish_reason) {
  json choice = {{"index", 0}};
  if (h.endpoint == Endpoint::kChat) {
    choice["delta"] = std::move(delta);
  } else {
    choice["text"] = std::string(text);
    choice["logprobs"] = nullptr;
  }
  choice["finish_reason"] = FinishReason(finish_reason);
  return choice;
}

json StatusOrNull(const std::string& s) { return s.empty() ? json(nullptr) : json(s); }

}  // namespace

std::string RandomHex(size_t bytes) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * bytes);
  for (size_t i = 0; i < bytes; ++i) {
    const auto b = static_cast<uint8_t>(rng());
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0xF]);
  }
  return out;
}

ResponseHeader NewResponseHeader(Endpoint endpoint, std::string model, bool include_usage) {
  ResponseHeader h;
  h.endpoint = endpoint;
  h.id = (endpoint == Endpoint::kChat ? "chatcmpl-" : "cmpl-") + RandomHex(12);
  h.created = std::chrono::duration_cast<std::chrono::seconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
  h.model = std::move(model);
  h.include_usage = include_usage;
  return h;
}

json UsageJson(const Timings& t) {
  const size_t prompt = t.cache_n + t.prompt_n;
  return {{"prompt_tokens", prompt},
          {"completion_tokens", t.predicted_n},
          {"total_tokens", prompt + t.predicted_n},
          {"prompt_tokens_details", {{"cached_tokens", t.cache_n}}}};
}

json TimingsJson(const Timings& t) {
  return {{"cache_n", t.cache_n},
          {"prompt_n", t.prompt_n},
          {"prompt_ms", t.prompt_ms},
          {"prompt_per_token_ms", PerToken(t.prompt_n, t.prompt_ms)},
          {"prompt_per_second", PerSecond(t.prompt_n, t.prompt_ms)},
          {"predicted_n", t.predicted_n},
          {"predicted_ms", t.predicted_ms},
          {"predicted_per_token_ms", PerToken(t.predicted_n, t.predicted_ms)},
          {"predicted_per_second", PerSecond(t.predicted_n, t.predicted_ms)},
          {"pool_n", t.pool_n},
          {"queue_ms", t.queue_ms},
          {"restore_ms", t.restore_ms}};
}

json CompletionBody(const ResponseHeader& h, std::string_view text,
                    std::string_view finish_reason, const Timings& t) {
  json choice = {{"index", 0}};
  if (h.endpoint == Endpoint::kChat) {
    choice["message"] = {{"role", "assistant"}, {"content", std::string(text)}};
  } else {
    choice["text"] = std::string(text);
    choice["logprobs"] = nullptr;
  }
  choice["finish_reason"] = FinishReason(finish_reason);
  json j = Envelope(h, /*chunk=*/false, json::array({std::move(choice)}));
  j["usage"] = UsageJson(t);
  j["timings"] = TimingsJson(t);
  return j;
}

json RoleChunk(const ResponseHeader& h) {
  json delta = {{"role", "assistant"}, {"content", ""}};
  return Envelope(h, true, json::array({StreamChoice(h, std::move(delta), "", "")}));
}

json ContentChunk(const ResponseHeader& h, std::string_view text) {
  json delta = {{"content", std::string(text)}};
  return Envelope(h, true, json::array({StreamChoice(h, std::move(delta), text, "")}));
}

json FinishChunk(const ResponseHeader& h, std::string_view finish_reason, const Timings& t) {
  json j = Envelope(h, true,
                    json::array({StreamChoice(h, json::object(), "", finish_reason)}));
  j["timings"] = TimingsJson(t);
  return j;
}

json UsageChunk(const ResponseHeader& h, const Timings& t) {
  json j = Envelope(h, true, json::array());
  j["usage"] = UsageJson(t);
  return j;
}

std::string JsonText(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string SseEvent(const json& j) { return "data: " + JsonText(j) + "\n\n"; }

json ErrorBody(const ApiError& e) {
  return {{"error",
           {{"message", e.message},
            {"type", e.type},
            {"param", StatusOrNull(e.param)},
            {"code", StatusOrNull(e.code)}}}};
}

ApiError ErrorFromStatus(const Status& status) {
  ApiError e;
  e.message = status.message().empty() ? status.ToString() : status.message();
  switch (status.code()) {
    case StatusCode::kInvalidArgument: e.http_status = 400; break;
    case StatusCode::kNotFound: e.http_status = 404; break;
    case StatusCode::kNoSpace:
      e.http_status = 413;
      e.code = "context_length_exceeded";
      break;
    case StatusCode::kBusy:
      e.http_status = 429;
      e.type = "rate_limit_error";
      e.code = "queue_full";
      break;
    case StatusCode::kAborted:
      e.http_status = 503;
      e.type = "server_error";
      e.code = "unavailable";
      break;
    case StatusCode::kUnsupported:
      e.http_status = 501;
      e.type = "server_error";
      break;
    default:
      e.http_status = 500;
      e.type = "server_error";
      e.message = status.ToString();
      break;
  }
  return e;
}

json ModelsBody(std::string_view model_id, int64_t created) {
  json model = {{"id", std::string(model_id)},
                {"object", "model"},
                {"created", created},
                {"owned_by", "kvpool"}};
  return {{"object", "list"}, {"data", json::array({std::move(model)})}};
}

json SlotsBody(const std::vector<SlotInfo>& slots) {
  json out = json::array();
  for (const SlotInfo& s : slots) {
    out.push_back({{"id", s.id},
                   {"state", s.state},
                   {"is_processing", s.state != "idle"},
                   {"n_ctx", s.n_ctx},
                   {"n_past", s.n_past},
                   {"prompt_tokens", s.prompt_tokens},
                   {"cached_tokens", s.cached_tokens},
                   {"generated", s.generated}});
  }
  return out;
}

}  // namespace kvpool::serve
