#include "api_request.h"

#include <cmath>
#include <cstdint>
#include <exception>
#include <limits>
#include <optional>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "stop_matcher.h"

namespace kvpool::serve {
namespace {

using json = nlohmann::json;

constexpr size_t kMaxQuotedBytes = 60;  // of a string value quoted in a message

// ---------------------------------------------------------------------------
// Errors

// A short rendering of a value for "got ..." in messages. Containers are
// not rendered (they may be huge or deeply nested).
std::string Describe(const json& v) {
  switch (v.type()) {
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    case json::value_t::string: {
      const std::string& s = v.get_ref<const std::string&>();
      if (s.size() <= kMaxQuotedBytes) return json(s).dump();
      const std::string_view head = std::string_view(s).substr(0, kMaxQuotedBytes);
      return json(std::string(head.substr(0, CompleteUtf8Prefix(head))))
                 .dump(-1, ' ', false, json::error_handler_t::replace) +
             " (" + std::to_string(s.size()) + " bytes)";
    }
    default: return v.dump();
  }
}

// Fills *error with a 400 for `param` and returns false.
bool Fail(ApiError* error, std::string param, const std::string& problem,
          std::string code = "") {
  error->http_status = 400;
  error->type = "invalid_request_error";
  error->message = param.empty() ? problem : param + ": " + problem;
  error->param = std::move(param);
  error->code = std::move(code);
  return false;
}

bool FailGot(ApiError* error, std::string param, const std::string& expected, const json& got) {
  return Fail(error, std::move(param), "must be " + expected + ", got " + Describe(got));
}

bool FailUnsupported(ApiError* error, std::string param, const std::string& what,
                     const json& got) {
  return Fail(error, std::move(param), what + ", got " + Describe(got), "unsupported_value");
}

std::string Path(std::string_view prefix, std::string_view key) {
  return prefix.empty() ? std::string(key) : std::string(prefix) + "." + std::string(key);
}

std::string Index(std::string_view path, size_t i) {
  return std::string(path) + "[" + std::to_string(i) + "]";
}

// ---------------------------------------------------------------------------
// Typed field access. Each Read* returns true when the field is absent,
// null or valid (then *out is set); false with *error filled otherwise.

// The field `key` of `object`, or null when absent or null.
const json* Find(const json& object, std::string_view key) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

// An integral JSON number as int64 (saturated); nullopt for anything else.
std::optional<int64_t> AsInteger(const json& v) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    return u > static_cast<uint64_t>(kMax) ? kMax : static_cast<int64_t>(u);
  }
  if (v.is_number_integer()) return v.get<int64_t>();
  if (!v.is_number_float()) return std::nullopt;
  const double d = v.get<double>();
  if (!std::isfinite(d) || std::floor(d) != d) return std::nullopt;
  if (d >= 9.2e18) return kMax;
  if (d <= -9.2e18) return std::numeric_limits<int64_t>::min();
  return static_cast<int64_t>(d);
}

bool ReadBool(const json& object, std::string_view key, std::string_view prefix, bool* out,
              ApiError* error) {
  const json* v = Find(object, key);
  if (v == nullptr) return true;
  if (!v->is_boolean()) return FailGot(error, Path(prefix, key), "a boolean", *v);
  *out = v->get<bool>();
  return true;
}

bool ReadString(const json& object, std::string_view key, std::string_view prefix,
                std::string* out, ApiError* error) {
  const json* v = Find(object, key);
  if (v == nullptr) return true;
  if (!v->is_string()) return FailGot(error, Path(prefix, key), "a string", *v);
  *out = v->get<std::string>();
  return true;
}

// A closed or half-open interval of numbers, and how messages write it.
struct NumberRange {
  double min;
  double max;
  bool min_open;
  const char* text;  // e.g. "a number in [0, 2]"
};

bool ReadNumber(const json& object, std::string_view key, const NumberRange& range,
                double* out, ApiError* error) {
  const json* v = Find(object, key);
  if (v == nullptr) return true;
  if (!v->is_number()) return FailGot(error, std::string(key), range.text, *v);
  const double d = v->get<double>();
  const bool above_min = range.min_open ? d > range.min : d >= range.min;
  if (!(above_min && d <= range.max)) return FailGot(error, std::string(key), range.text, *v);
  *out = d;
  return true;
}

bool ReadInteger(const json& object, std::string_view key, int64_t min, int64_t max,
                 int64_t* out, ApiError* error) {
  const json* v = Find(object, key);
  if (v == nullptr) return true;
  const std::optional<int64_t> i = AsInteger(*v);
  if (!i || *i < min || *i > max) {
    return FailGot(error, std::string(key),
                   "an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]",
                   *v);
  }
  *out = *i;
  return true;
}

// ---------------------------------------------------------------------------
// Fields both endpoints share

constexpr NumberRange kTemperature{0, 2, false, "a number in [0, 2]"};
constexpr NumberRange kTopP{0, 1, true, "a number in (0, 1]"};
constexpr NumberRange kPenalty{-2, 2, false, "a number in [-2, 2]"};
constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
constexpr int64_t kUint32Max = std::numeric_limits<uint32_t>::max();

bool ReadModel(const json& body, std::string* model, ApiError* error) {
  const json* v = Find(body, "model");
  if (v == nullptr) return Fail(error, "model", "is required (the id /v1/models lists)");
  if (!v->is_string() || v->get_ref<const std::string&>().empty()) {
    return FailGot(error, "model", "a non-empty string", *v);
  }
  *model = v->get<std::string>();
  return true;
}

bool ReadSampling(const json& body, SamplingParams* s, ApiError* error) {
  double temperature = s->temperature;
  double top_p = s->top_p;
  int64_t top_k = s->top_k;
  int64_t seed = s->seed;
  if (!ReadNumber(body, "temperature", kTemperature, &temperature, error) ||
      !ReadNumber(body, "top_p", kTopP, &top_p, error) ||
      !ReadInteger(body, "top_k", 0, kInt32Max, &top_k, error) ||
      !ReadInteger(body, "seed", -1, kUint32Max, &seed, error)) {
    return false;
  }
  s->temperature = static_cast<float>(temperature);
  s->top_p = static_cast<float>(top_p);
  s->top_k = static_cast<int32_t>(top_k);
  // -1 (llama-server's "random") and 2^32-1 (LLAMA_DEFAULT_SEED) both draw
  // a random seed.
  s->seed = seed < 0 ? std::numeric_limits<uint32_t>::max() : static_cast<uint32_t>(seed);
  return true;
}

bool ReadMaxTokens(const json& body, int32_t* max_tokens, ApiError* error) {
  int64_t legacy = -1;
  int64_t current = -1;
  if (!ReadInteger(body, "max_tokens", 1, kInt32Max, &legacy, error) ||
      !ReadInteger(body, "max_completion_tokens", 1, kInt32Max, &current, error)) {
    return false;
  }
  *max_tokens = static_cast<int32_t>(current > 0 ? current : legacy);
  return true;
}

bool ReadStopString(const json& v, std::string param, std::vector<std::string>* stop,
                    ApiError* error) {
  if (!v.is_string()) return FailGot(error, std::move(param), "a string", v);
  const std::string& s = v.get_ref<const std::string&>();
  if (s.size() > kMaxStopBytes) {
    return Fail(error, std::move(param),
                "must be at most " + std::to_string(kMaxStopBytes) + " bytes, got " +
                    std::to_string(s.size()));
  }
  if (!s.empty()) stop->push_back(s);
  return true;
}

bool ReadStop(const json& body, std::vector<std::string>* stop, ApiError* error) {
  const json* v = Find(body, "stop");
  if (v == nullptr) return true;
  if (v->is_string()) return ReadStopString(*v, "stop", stop, error);
  if (!v->is_array()) return FailGot(error, "stop", "a string or an array of strings", *v);
  if (v->size() > kMaxStopStrings) {
    return Fail(error, "stop",
                "must hold at most " + std::to_string(kMaxStopStrings) + " strings, got " +
                    std::to_string(v->size()));
  }
  for (size_t i = 0; i < v->size(); ++i) {
    if (!ReadStopString((*v)[i], Index("stop", i), stop, error)) return false;
  }
  return true;
}

bool ReadStreaming(const json& body, RequestParams* p, ApiError* error) {
  if (!ReadBool(body, "stream", "", &p->stream, error)) return false;
  const json* options = Find(body, "stream_options");
  if (options == nullptr) return true;
  if (!options->is_object()) return FailGot(error, "stream_options", "an object", *options);
  return ReadBool(*options, "include_usage", "stream_options", &p->include_usage, error);
}

bool ReadChoiceCount(const json& body, ApiError* error) {
  int64_t n = 1;
  if (!ReadInteger(body, "n", 1, 128, &n, error)) return false;
  if (n != 1) {
    return FailUnsupported(error, "n", "only 1 choice per request is supported", *Find(body, "n"));
  }
  return true;
}

bool ReadResponseFormat(const json& body, ApiError* error) {
  const json* v = Find(body, "response_format");
  if (v == nullptr) return true;
  if (!v->is_object()) return FailGot(error, "response_format", "an object", *v);
  std::string type = "text";
  if (!ReadString(*v, "type", "response_format", &type, error)) return false;
  if (type != "text") {
    return FailUnsupported(error, "response_format.type", "only \"text\" is supported",
                           json(type));
  }
  return true;
}

// Fields OpenAI defines that change nothing here: their types are checked.
bool ReadIgnoredFields(const json& body, ApiError* error) {
  std::string user;
  double penalty = 0;
  if (!ReadString(body, "user", "", &user, error) ||
      !ReadNumber(body, "frequency_penalty", kPenalty, &penalty, error) ||
      !ReadNumber(body, "presence_penalty", kPenalty, &penalty, error) ||
      !ReadResponseFormat(body, error)) {
    return false;
  }
  const json* bias = Find(body, "logit_bias");
  if (bias != nullptr && !bias->is_object()) {
    return FailGot(error, "logit_bias", "an object", *bias);
  }
  return true;
}

bool ReadParams(const json& body, RequestParams* p, ApiError* error) {
  return ReadModel(body, &p->model, error) && ReadStreaming(body, p, error) &&
         ReadSampling(body, &p->sampling, error) && ReadMaxTokens(body, &p->max_tokens, error) &&
         ReadStop(body, &p->stop, error) && ReadChoiceCount(body, error) &&
         ReadIgnoredFields(body, error);
}

// ---------------------------------------------------------------------------
// The body

// nlohmann's message without its "[json.exception.parse_error.101] " prefix.
std::string WithoutExceptionId(std::string_view what) {
  const size_t end = what.find("] ");
  if (!what.starts_with("[json.exception.") || end == std::string_view::npos) {
    return std::string(what);
  }
  return std::string(what.substr(end + 2));
}

// Parses `body` into a JSON object.
bool ParseObject(std::string_view body, json* out, ApiError* error) {
  try {
    *out = json::parse(body.begin(), body.end());
  } catch (const json::parse_error& e) {
    return Fail(error, "",
                "request body is not valid JSON (at byte " + std::to_string(e.byte) +
                    "): " + WithoutExceptionId(e.what()));
  } catch (const std::exception& e) {
    return Fail(error, "", "request body is not valid JSON: " + WithoutExceptionId(e.what()));
  }
  if (!out->is_object()) return FailGot(error, "", "a JSON object", *out);
  return true;
}

template <typename T>
Result<T> Finish(bool ok, T value, const ApiError& failure, ApiError* error) {
  if (ok) return value;
  if (error != nullptr) *error = failure;
  return Status::InvalidArgument(failure.message);
}

// ---------------------------------------------------------------------------
// Chat messages

bool ReadContentParts(const json& parts, const std::string& path, std::string* content,
                      ApiError* error) {
  for (size_t j = 0; j < parts.size(); ++j) {
    const json& part = parts[j];
    const std::string part_path = Index(path, j);
    if (!part.is_object()) return FailGot(error, part_path, "an object", part);
    const json* type = Find(part, "type");
    if (type == nullptr) return Fail(error, part_path + ".type", "is required");
    if (!type->is_string()) return FailGot(error, part_path + ".type", "a string", *type);
    if (type->get_ref<const std::string&>() != "text") {
      return FailUnsupported(error, part_path + ".type", "only \"text\" parts are supported",
                             *type);
    }
    const json* text = Find(part, "text");
    if (text == nullptr) return Fail(error, part_path + ".text", "is required");
    if (!text->is_string()) return FailGot(error, part_path + ".text", "a string", *text);
    if (j > 0) content->push_back('\n');
    content->append(text->get_ref<const std::string&>());
  }
  return true;
}

bool ReadContent(const json& message, const std::string& path, const std::string& role,
                 std::string* content, ApiError* error) {
  const std::string content_path = path + ".content";
  const json* v = Find(message, "content");
  if (v == nullptr) {
    if (role == "assistant") return true;  // e.g. a turn that only called tools
    return Fail(error, content_path, "is required for role \"" + role + "\"");
  }
  if (v->is_string()) {
    *content = v->get<std::string>();
    return true;
  }
  if (!v->is_array()) {
    return FailGot(error, content_path, "a string or an array of content parts", *v);
  }
  return ReadContentParts(*v, content_path, content, error);
}

bool ReadRole(const json& message, const std::string& path, std::string* role, ApiError* error) {
  const json* v = Find(message, "role");
  if (v == nullptr) return Fail(error, path + ".role", "is required");
  static constexpr const char* kRoles[] = {"system", "user", "assistant", "developer", "tool"};
  if (v->is_string()) {
    for (const char* known : kRoles) {
      if (v->get_ref<const std::string&>() == known) {
        *role = known;
        return true;
      }
    }
  }
  return FailGot(error, path + ".role",
                 "one of \"system\", \"user\", \"assistant\", \"developer\", \"tool\"", *v);
}

bool ReadMessage(const json& message, const std::string& path, ChatMessage* out,
                 ApiError* error) {
  if (!message.is_object()) return FailGot(error, path, "an object", message);
  if (!ReadRole(message, path, &out->role, error) ||
      !ReadContent(message, path, out->role, &out->content, error)) {
    return false;
  }
  if (out->role == "developer") out->role = "system";
  return true;
}

bool ReadMessages(const json& body, std::vector<ChatMessage>* messages, ApiError* error) {
  const json* v = Find(body, "messages");
  if (v == nullptr) return Fail(error, "messages", "is required");
  if (!v->is_array()) return FailGot(error, "messages", "an array of messages", *v);
  if (v->empty()) return Fail(error, "messages", "must hold at least one message");
  for (size_t i = 0; i < v->size(); ++i) {
    ChatMessage message;
    if (!ReadMessage((*v)[i], Index("messages", i), &message, error)) return false;
    messages->push_back(std::move(message));
  }
  return true;
}

bool ReadChatOnlyFields(const json& body, ApiError* error) {
  bool logprobs = false;
  if (!ReadBool(body, "logprobs", "", &logprobs, error)) return false;
  if (logprobs) return FailUnsupported(error, "logprobs", "not supported", *Find(body, "logprobs"));
  int64_t top_logprobs = 0;
  if (!ReadInteger(body, "top_logprobs", 0, 20, &top_logprobs, error)) return false;
  if (top_logprobs != 0) {
    return FailUnsupported(error, "top_logprobs", "not supported", *Find(body, "top_logprobs"));
  }
  return true;
}

// ---------------------------------------------------------------------------
// Completion prompts

constexpr const char* kTokenIdText = "a token id (an integer in [0, 2147483647])";

bool ReadTokenIds(const json& array, const std::string& path, std::vector<int32_t>* tokens,
                  ApiError* error) {
  if (array.empty()) return Fail(error, path, "must not be empty");
  tokens->reserve(array.size());
  for (size_t i = 0; i < array.size(); ++i) {
    const std::optional<int64_t> id = AsInteger(array[i]);
    if (!id || *id < 0 || *id > kInt32Max) {
      return FailGot(error, Index(path, i), kTokenIdText, array[i]);
    }
    tokens->push_back(static_cast<int32_t>(*id));
  }
  return true;
}

bool ReadTextPrompt(const json& v, const std::string& path, CompletionRequest* out,
                    ApiError* error) {
  if (v.get_ref<const std::string&>().empty()) return Fail(error, path, "must not be empty");
  out->prompt = v.get<std::string>();
  return true;
}

// An array holding one prompt: [string] or [[token ids]].
bool ReadSinglePrompt(const json& array, CompletionRequest* out, ApiError* error) {
  if (array.size() != 1) {
    return Fail(error, "prompt",
                "only one prompt per request is supported, got " + std::to_string(array.size()),
                "unsupported_value");
  }
  const json& only = array[0];
  if (only.is_string()) return ReadTextPrompt(only, "prompt[0]", out, error);
  if (!only.is_array()) {
    return FailGot(error, "prompt[0]", "a string or an array of token ids", only);
  }
  std::vector<int32_t> tokens;
  if (!ReadTokenIds(only, "prompt[0]", &tokens, error)) return false;
  out->prompt = std::move(tokens);
  return true;
}

bool ReadPrompt(const json& body, CompletionRequest* out, ApiError* error) {
  const json* v = Find(body, "prompt");
  if (v == nullptr) return Fail(error, "prompt", "is required");
  if (v->is_string()) return ReadTextPrompt(*v, "prompt", out, error);
  if (!v->is_array()) {
    return FailGot(error, "prompt", "a string, an array of one string or of token ids", *v);
  }
  if (v->empty()) return Fail(error, "prompt", "must not be empty");
  if ((*v)[0].is_string() || (*v)[0].is_array()) return ReadSinglePrompt(*v, out, error);
  std::vector<int32_t> tokens;
  if (!ReadTokenIds(*v, "prompt", &tokens, error)) return false;
  out->prompt = std::move(tokens);
  return true;
}

bool ReadCompletionOnlyFields(const json& body, ApiError* error) {
  bool echo = false;
  if (!ReadBool(body, "echo", "", &echo, error)) return false;
  if (echo) return FailUnsupported(error, "echo", "not supported", *Find(body, "echo"));
  int64_t logprobs = 0;
  if (!ReadInteger(body, "logprobs", 0, 5, &logprobs, error)) return false;
  if (logprobs != 0) return FailUnsupported(error, "logprobs", "not supported", *Find(body, "logprobs"));
  int64_t best_of = 1;
  if (!ReadInteger(body, "best_of", 1, 20, &best_of, error)) return false;
  if (best_of != 1) {
    return FailUnsupported(error, "best_of", "only 1 is supported", *Find(body, "best_of"));
  }
  std::string suffix;
  if (!ReadString(body, "suffix", "", &suffix, error)) return false;
  if (!suffix.empty()) return FailUnsupported(error, "suffix", "not supported", *Find(body, "suffix"));
  return true;
}

}  // namespace

Result<ChatCompletionRequest> ParseChatCompletionRequest(std::string_view body,
                                                         ApiError* error) {
  ApiError failure;
  ChatCompletionRequest request;
  json j;
  const bool ok = ParseObject(body, &j, &failure) && ReadParams(j, &request.params, &failure) &&
                  ReadMessages(j, &request.messages, &failure) &&
                  ReadChatOnlyFields(j, &failure);
  return Finish(ok, std::move(request), failure, error);
}

Result<CompletionRequest> ParseCompletionRequest(std::string_view body, ApiError* error) {
  ApiError failure;
  CompletionRequest request;
  json j;
  const bool ok = ParseObject(body, &j, &failure) && ReadParams(j, &request.params, &failure) &&
                  ReadPrompt(j, &request, &failure) && ReadCompletionOnlyFields(j, &failure);
  return Finish(ok, std::move(request), failure, error);
}

std::string_view BearerToken(std::string_view authorization) {
  constexpr std::string_view kScheme = "bearer ";  // the scheme is case-insensitive
  if (authorization.size() <= kScheme.size()) return {};
  for (size_t i = 0; i < kScheme.size(); ++i) {
    const char c = authorization[i];
    if ((c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c) != kScheme[i]) return {};
  }
  std::string_view key = authorization.substr(kScheme.size());
  while (!key.empty() && (key.front() == ' ' || key.front() == '\t')) key.remove_prefix(1);
  while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.remove_suffix(1);
  return key;
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  volatile unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = static_cast<unsigned char>(diff | (static_cast<unsigned char>(a[i]) ^
                                              static_cast<unsigned char>(b[i])));
  }
  return diff == 0;
}

}  // namespace kvpool::serve
