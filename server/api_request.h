// OpenAI request bodies: parsing and validation for /v1/chat/completions and
// /v1/completions (docs/serve.md lists what is supported).
//
// Rules:
//   - the body must be a JSON object; malformed JSON is an error that gives
//     the parser's byte offset;
//   - unknown fields are ignored; a known field with the wrong type or out
//     of range is an error; null means "not given" for every optional field;
//   - OpenAI fields that change nothing here (user, frequency_penalty,
//     presence_penalty, logit_bias, response_format of type "text", ...) are
//     checked for type and otherwise ignored; fields asking for what this
//     server does not do (n > 1, logprobs, echo, response_format json_*)
//     are errors rather than silently ignored.
// The parsers never throw and accept any bytes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <kvpool/result.h>

#include "generation.h"

namespace kvpool::serve {

// An error as the OpenAI API reports it: the HTTP status and the body
// {"error": {"message", "type", "param", "code"}} (api_response.h).
struct ApiError {
  int http_status = 400;
  std::string message;  // names the field, the problem and the value given
  std::string type = "invalid_request_error";
  std::string param;  // JSON path of the offending field, e.g. "messages[1].content"; "" for none
  std::string code;   // e.g. "model_not_found"; "" for none
};

// The limits the parsers enforce.
inline constexpr size_t kMaxStopStrings = 4;
inline constexpr size_t kMaxStopBytes = 1024;  // per stop string

// The fields both endpoints share, validated and mapped.
struct RequestParams {
  std::string model;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  SamplingParams sampling;     // llama-server's defaults where not given
  // max_completion_tokens, else max_tokens; -1 when neither is given (the
  // scheduler applies its default).
  int32_t max_tokens = -1;
  std::vector<std::string> stop;  // at most kMaxStopStrings, none empty
};

struct ChatCompletionRequest {
  RequestParams params;
  // Non-empty. Text parts of a content array are joined with "\n"; an
  // assistant message with null content has content ""; role "developer"
  // is passed on as "system".
  std::vector<ChatMessage> messages;
};

struct CompletionRequest {
  RequestParams params;
  // Text to tokenize, or token ids (each >= 0; the caller checks them
  // against the vocabulary). Never empty.
  std::variant<std::string, std::vector<int32_t>> prompt;
};

// Parse and validate a request body. On failure the Status is
// InvalidArgument with the same message as *error, and *error (when not
// null) holds the full ApiError (http_status 400, param set). On success
// *error is left unchanged.
Result<ChatCompletionRequest> ParseChatCompletionRequest(std::string_view body,
                                                         ApiError* error = nullptr);
Result<CompletionRequest> ParseCompletionRequest(std::string_view body,
                                                 ApiError* error = nullptr);

// The key of an "Authorization: Bearer <key>" header value; "" when the
// value has another form.
std::string_view BearerToken(std::string_view authorization);

// Equality whose time depends only on the lengths, not on where the
// strings differ (for API keys).
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace kvpool::serve
