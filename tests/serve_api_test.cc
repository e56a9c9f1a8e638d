// kvpool serve's HTTP-facing layer without a model: OpenAI request parsing
// and validation, response and SSE formatting, Prometheus text, stop strings
// over token pieces; and a deterministic mutation run over the parsers.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "api_request.h"
#include "api_response.h"
#include "metrics.h"
#include "stop_matcher.h"

namespace kvpool::serve {
namespace {

using json = nlohmann::json;

const char* kMinimalChat = R"({"model":"m","messages":[{"role":"user","content":"hi"}]})";
const char* kMinimalCompletion = R"({"model":"m","prompt":"once upon a time"})";

// A body: `base` with `patch` merged in (a null in the patch removes the key).
std::string Patched(const char* base, const json& patch) {
  json j = json::parse(base);
  j.merge_patch(patch);
  return j.dump();
}

ApiError ChatError(const std::string& body) {
  ApiError e;
  Result<ChatCompletionRequest> r = ParseChatCompletionRequest(body, &e);
  EXPECT_FALSE(r.ok()) << body;
  if (!r.ok()) {
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(r.status().message(), e.message);
  }
  return e;
}

ApiError CompletionError(const std::string& body) {
  ApiError e;
  Result<CompletionRequest> r = ParseCompletionRequest(body, &e);
  EXPECT_FALSE(r.ok()) << body;
  if (!r.ok()) {
    EXPECT_EQ(r.status().message(), e.message);
  }
  return e;
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// ---------------------------------------------------------------------------
// Requests: valid bodies

TEST(ServeApiRequest, MinimalChatGetsLlamaServerDefaults) {
  Result<ChatCompletionRequest> r = ParseChatCompletionRequest(kMinimalChat);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->params.model, "m");
  EXPECT_FALSE(r->params.stream);
  EXPECT_FALSE(r->params.include_usage);
  EXPECT_FLOAT_EQ(r->params.sampling.temperature, 0.8f);
  EXPECT_FLOAT_EQ(r->params.sampling.top_p, 0.95f);
  EXPECT_EQ(r->params.sampling.top_k, 40);
  EXPECT_EQ(r->params.sampling.seed, 0xFFFFFFFFu);
  EXPECT_EQ(r->params.max_tokens, -1);
  EXPECT_TRUE(r->params.stop.empty());
  ASSERT_EQ(r->messages.size(), 1u);
  EXPECT_EQ(r->messages[0].role, "user");
  EXPECT_EQ(r->messages[0].content, "hi");
}

TEST(ServeApiRequest, FullChatBodyMapsEveryField) {
  const char* body = R"({
    "model": "m", "stream": true, "stream_options": {"include_usage": true},
    "temperature": 0, "top_p": 1, "top_k": 0, "seed": 42, "max_tokens": 7,
    "stop": ["\n\n", "END"], "n": 1, "user": "u", "frequency_penalty": 0.5,
    "presence_penalty": -1, "logit_bias": {"15": -100}, "response_format": {"type": "text"},
    "logprobs": false, "top_logprobs": 0, "tools": [], "some_future_field": {"x": 1},
    "messages": [
      {"role": "system", "content": "be brief"},
      {"role": "user", "content": "hi", "name": "bob"},
      {"role": "assistant", "content": "hello"},
      {"role": "user", "content": "again"}
    ]})";
  Result<ChatCompletionRequest> r = ParseChatCompletionRequest(body);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const RequestParams& p = r->params;
  EXPECT_TRUE(p.stream);
  EXPECT_TRUE(p.include_usage);
  EXPECT_EQ(p.sampling.temperature, 0.0f);
  EXPECT_EQ(p.sampling.top_p, 1.0f);
  EXPECT_EQ(p.sampling.top_k, 0);
  EXPECT_EQ(p.sampling.seed, 42u);
  EXPECT_EQ(p.max_tokens, 7);
  EXPECT_EQ(p.stop, (std::vector<std::string>{"\n\n", "END"}));
  ASSERT_EQ(r->messages.size(), 4u);
  EXPECT_EQ(r->messages[0].role, "system");
  EXPECT_EQ(r->messages[3].content, "again");
}

TEST(ServeApiRequest, ContentPartsAreJoinedWithNewlines) {
  const char* body = R"({"model":"m","messages":[{"role":"user","content":[
      {"type":"text","text":"first"},{"type":"text","text":"second"}]}]})";
  Result<ChatCompletionRequest> r = ParseChatCompletionRequest(body);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->messages[0].content, "first\nsecond");
}

TEST(ServeApiRequest, AssistantMayHaveNullContentAndDeveloperIsSystem) {
  const char* body = R"({"model":"m","messages":[{"role":"developer","content":"rules"},
      {"role":"user","content":"q"},{"role":"assistant","content":null},
      {"role":"tool","content":"42","tool_call_id":"c1"}]})";
  Result<ChatCompletionRequest> r = ParseChatCompletionRequest(body);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->messages[0].role, "system");
  EXPECT_EQ(r->messages[2].role, "assistant");
  EXPECT_EQ(r->messages[2].content, "");
  EXPECT_EQ(r->messages[3].role, "tool");
}

TEST(ServeApiRequest, NullMeansNotGiven) {
  const std::string body = R"({"model":"m","messages":[{"role":"user","content":"x"}],
      "temperature":null,"top_p":null,"top_k":null,"seed":null,"max_tokens":null,
      "max_completion_tokens":null,"stop":null,"n":null,"stream":null,"stream_options":null,
      "response_format":null,"logit_bias":null,"user":null})";
  Result<ChatCompletionRequest> r = ParseChatCompletionRequest(body);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FLOAT_EQ(r->params.sampling.temperature, 0.8f);
  EXPECT_EQ(r->params.max_tokens, -1);
}

TEST(ServeApiRequest, IntegersMayBeWrittenAsIntegralFloats) {
  Result<ChatCompletionRequest> r =
      ParseChatCompletionRequest(Patched(kMinimalChat, {{"top_k", 40.0}, {"max_tokens", 8.0}}));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->params.sampling.top_k, 40);
  EXPECT_EQ(r->params.max_tokens, 8);
}

TEST(ServeApiRequest, SeedRangeAndRandomSeed) {
  for (const auto& [seed, expected] : std::vector<std::pair<json, uint32_t>>{
           {0, 0u}, {7, 7u}, {4294967295u, 0xFFFFFFFFu}, {-1, 0xFFFFFFFFu}}) {
    Result<ChatCompletionRequest> r = ParseChatCompletionRequest(Patched(kMinimalChat, {{"seed", seed}}));
    ASSERT_TRUE(r.ok()) << seed;
    EXPECT_EQ(r->params.sampling.seed, expected) << seed;
  }
}

TEST(ServeApiRequest, MaxCompletionTokensWinsOverMaxTokens) {
  Result<ChatCompletionRequest> r = ParseChatCompletionRequest(
      Patched(kMinimalChat, {{"max_tokens", 5}, {"max_completion_tokens", 9}}));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->params.max_tokens, 9);
}

TEST(ServeApiRequest, StopAsStringAndEmptyStopsDropped) {
  Result<ChatCompletionRequest> a = ParseChatCompletionRequest(Patched(kMinimalChat, {{"stop", "##"}}));
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->params.stop, std::vector<std::string>{"##"});
  Result<ChatCompletionRequest> b =
      ParseChatCompletionRequest(Patched(kMinimalChat, {{"stop", json::array({"", "x"})}}));
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->params.stop, std::vector<std::string>{"x"});
}

TEST(ServeApiRequest, CompletionPromptForms) {
  Result<CompletionRequest> text = ParseCompletionRequest(kMinimalCompletion);
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  EXPECT_EQ(std::get<std::string>(text->prompt), "once upon a time");

  Result<CompletionRequest> one = ParseCompletionRequest(R"({"model":"m","prompt":["hello"]})");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(std::get<std::string>(one->prompt), "hello");

  Result<CompletionRequest> ids = ParseCompletionRequest(R"({"model":"m","prompt":[1,2,3]})");
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(std::get<std::vector<int32_t>>(ids->prompt), (std::vector<int32_t>{1, 2, 3}));

  Result<CompletionRequest> nested = ParseCompletionRequest(R"({"model":"m","prompt":[[4,5]]})");
  ASSERT_TRUE(nested.ok());
  EXPECT_EQ(std::get<std::vector<int32_t>>(nested->prompt), (std::vector<int32_t>{4, 5}));
}

TEST(ServeApiRequest, ErrorPointerIsOptionalAndUntouchedOnSuccess) {
  EXPECT_FALSE(ParseChatCompletionRequest("{}").ok());
  ApiError e;
  e.message = "unchanged";
  EXPECT_TRUE(ParseChatCompletionRequest(kMinimalChat, &e).ok());
  EXPECT_EQ(e.message, "unchanged");
}

// ---------------------------------------------------------------------------
// Requests: errors

struct FieldCase {
  json patch;           // merged into a valid body
  std::string param;    // the ApiError's param
  std::string snippet;  // a part of the message
};

void ExpectFieldErrors(const char* base, const std::vector<FieldCase>& cases, bool chat) {
  for (const FieldCase& c : cases) {
    const std::string body = Patched(base, c.patch);
    const ApiError e = chat ? ChatError(body) : CompletionError(body);
    EXPECT_EQ(e.http_status, 400) << body;
    EXPECT_EQ(e.type, "invalid_request_error");
    EXPECT_EQ(e.param, c.param) << body << " -> " << e.message;
    EXPECT_TRUE(e.message.rfind(c.param + ": ", 0) == 0) << e.message;
    EXPECT_TRUE(Contains(e.message, c.snippet)) << e.message << " lacks " << c.snippet;
  }
}

// Errors of the fields both endpoints share.
std::vector<FieldCase> CommonFieldCases() {
  return {
      {{{"model", nullptr}}, "model", "is required"},
      {{{"model", 5}}, "model", "must be a non-empty string, got 5"},
      {{{"model", ""}}, "model", "non-empty string"},
      {{{"stream", "yes"}}, "stream", "must be a boolean, got \"yes\""},
      {{{"stream_options", 1}}, "stream_options", "must be an object, got 1"},
      {{{"stream_options", {{"include_usage", "x"}}}}, "stream_options.include_usage", "boolean"},
      {{{"temperature", "hot"}}, "temperature", "must be a number in [0, 2], got \"hot\""},
      {{{"temperature", -0.1}}, "temperature", "[0, 2], got -0.1"},
      {{{"temperature", 2.5}}, "temperature", "got 2.5"},
      {{{"top_p", 0}}, "top_p", "must be a number in (0, 1], got 0"},
      {{{"top_p", 1.5}}, "top_p", "got 1.5"},
      {{{"top_p", json::array()}}, "top_p", "got an array"},
      {{{"top_k", -1}}, "top_k", "must be an integer in [0, 2147483647], got -1"},
      {{{"top_k", 1.5}}, "top_k", "got 1.5"},
      {{{"top_k", "40"}}, "top_k", "got \"40\""},
      {{{"seed", -2}}, "seed", "must be an integer in [-1, 4294967295], got -2"},
      {{{"seed", 4294967296}}, "seed", "got 4294967296"},
      {{{"seed", true}}, "seed", "got true"},
      {{{"max_tokens", 0}}, "max_tokens", "must be an integer in [1, 2147483647], got 0"},
      {{{"max_tokens", "10"}}, "max_tokens", "got \"10\""},
      {{{"max_tokens", 3e9}}, "max_tokens", "2147483647"},
      {{{"max_tokens", 18446744073709551615u}}, "max_tokens", "got 18446744073709551615"},
      {{{"max_completion_tokens", -3}}, "max_completion_tokens", "got -3"},
      {{{"stop", 5}}, "stop", "must be a string or an array of strings, got 5"},
      {{{"stop", json::array({"a", 1})}}, "stop[1]", "must be a string, got 1"},
      {{{"stop", json::array({"a", "b", "c", "d", "e"})}}, "stop", "at most 4 strings, got 5"},
      {{{"stop", std::string(kMaxStopBytes + 1, 'x')}}, "stop", "at most 1024 bytes"},
      {{{"n", 2}}, "n", "only 1 choice"},
      {{{"n", "1"}}, "n", "got \"1\""},
      {{{"user", 5}}, "user", "must be a string"},
      {{{"frequency_penalty", 3}}, "frequency_penalty", "[-2, 2], got 3"},
      {{{"presence_penalty", "x"}}, "presence_penalty", "got \"x\""},
      {{{"logit_bias", json::array()}}, "logit_bias", "must be an object, got an array"},
      {{{"response_format", "json"}}, "response_format", "must be an object"},
      {{{"response_format", {{"type", "json_object"}}}}, "response_format.type",
       "only \"text\" is supported, got \"json_object\""},
      {{{"response_format", {{"type", 5}}}}, "response_format.type", "must be a string"},
  };
}

TEST(ServeApiRequest, CommonFieldErrorsNameTheFieldInChat) {
  ExpectFieldErrors(kMinimalChat, CommonFieldCases(), /*chat=*/true);
}

TEST(ServeApiRequest, CommonFieldErrorsNameTheFieldInCompletions) {
  ExpectFieldErrors(kMinimalCompletion, CommonFieldCases(), /*chat=*/false);
}

TEST(ServeApiRequest, TemperatureMessageIsExact) {
  const ApiError e = ChatError(Patched(kMinimalChat, {{"temperature", "hot"}}));
  EXPECT_EQ(e.message, "temperature: must be a number in [0, 2], got \"hot\"");
}

TEST(ServeApiRequest, UnsupportedValuesHaveACode) {
  const ApiError n = ChatError(Patched(kMinimalChat, {{"n", 3}}));
  EXPECT_EQ(n.code, "unsupported_value");
  EXPECT_TRUE(Contains(n.message, "got 3")) << n.message;
}

TEST(ServeApiRequest, ChatMessageErrorsGiveThePath) {
  auto messages = [](json m) { return json{{"messages", std::move(m)}}; };
  json user = {{"role", "user"}, {"content", "ok"}};
  ExpectFieldErrors(kMinimalChat,
                    {
                        {{{"messages", nullptr}}, "messages", "is required"},
                        {messages(json::object()), "messages", "must be an array of messages"},
                        {messages(json::array()), "messages", "at least one message"},
                        {messages({5}), "messages[0]", "must be an object, got 5"},
                        {messages({user, {{"content", "x"}}}), "messages[1].role", "is required"},
                        {messages({{{"role", "bot"}, {"content", "x"}}}), "messages[0].role",
                         "one of \"system\", \"user\", \"assistant\", \"developer\", \"tool\", "
                         "got \"bot\""},
                        {messages({{{"role", 5}, {"content", "x"}}}), "messages[0].role", "got 5"},
                        {messages({{{"role", "user"}}}), "messages[0].content",
                         "is required for role \"user\""},
                        {messages({user, {{"role", "user"}, {"content", 5}}}),
                         "messages[1].content", "a string or an array of content parts, got 5"},
                        {messages({{{"role", "user"},
                                    {"content", {{{"type", "image_url"}, {"image_url", "u"}}}}}}),
                         "messages[0].content[0].type",
                         "only \"text\" parts are supported, got \"image_url\""},
                        {messages({{{"role", "user"}, {"content", {{{"type", "text"}}}}}}),
                         "messages[0].content[0].text", "is required"},
                        {messages({{{"role", "user"},
                                    {"content", {{{"type", "text"}, {"text", "a"}},
                                                 {{"type", "text"}, {"text", 5}}}}}}),
                         "messages[0].content[1].text", "must be a string, got 5"},
                        {messages({{{"role", "user"}, {"content", {5}}}}),
                         "messages[0].content[0]", "must be an object"},
                        {messages({{{"role", "user"}, {"content", {{{"text", "a"}}}}}}),
                         "messages[0].content[0].type", "is required"},
                        {{{"logprobs", true}}, "logprobs", "not supported"},
                        {{{"logprobs", "x"}}, "logprobs", "must be a boolean"},
                        {{{"top_logprobs", 5}}, "top_logprobs", "not supported"},
                        {{{"top_logprobs", 50}}, "top_logprobs", "[0, 20]"},
                    },
                    /*chat=*/true);
}

TEST(ServeApiRequest, CompletionPromptErrorsGiveThePath) {
  ExpectFieldErrors(kMinimalCompletion,
                    {
                        {{{"prompt", nullptr}}, "prompt", "is required"},
                        {{{"prompt", ""}}, "prompt", "must not be empty"},
                        {{{"prompt", json::array()}}, "prompt", "must not be empty"},
                        {{{"prompt", {"a", "b"}}}, "prompt", "only one prompt per request"},
                        {{{"prompt", {""}}}, "prompt[0]", "must not be empty"},
                        {{{"prompt", {1, -1}}}, "prompt[1]", "token id"},
                        {{{"prompt", {1, "a"}}}, "prompt[1]", "got \"a\""},
                        {{{"prompt", {1, 1.5}}}, "prompt[1]", "got 1.5"},
                        {{{"prompt", {1, 3000000000u}}}, "prompt[1]", "2147483647"},
                        {{{"prompt", {{1, 2}, {3}}}}, "prompt", "only one prompt"},
                        {{{"prompt", {json::array()}}}, "prompt[0]", "must not be empty"},
                        {{{"prompt", {{1, "x"}}}}, "prompt[0][1]", "token id"},
                        {{{"prompt", {json::object()}}}, "prompt[0]", "got an object"},
                        {{{"prompt", 5}}, "prompt", "got 5"},
                        {{{"prompt", json::object()}}, "prompt", "got an object"},
                        {{{"echo", true}}, "echo", "not supported"},
                        {{{"logprobs", 1}}, "logprobs", "not supported"},
                        {{{"logprobs", 9}}, "logprobs", "[0, 5]"},
                        {{{"best_of", 2}}, "best_of", "only 1"},
                        {{{"suffix", "end"}}, "suffix", "not supported"},
                        {{{"suffix", 1}}, "suffix", "must be a string"},
                    },
                    /*chat=*/false);
}

TEST(ServeApiRequest, LongStringValuesAreQuotedShortened) {
  const ApiError e = ChatError(Patched(kMinimalChat, {{"temperature", std::string(5000, 'z')}}));
  EXPECT_LT(e.message.size(), 200u) << e.message;
  EXPECT_TRUE(Contains(e.message, "(5000 bytes)")) << e.message;
}

TEST(ServeApiRequest, MalformedJsonGivesTheByteOffset) {
  const std::string body = R"({"model": "m", "messages": [}])";
  const ApiError e = ChatError(body);
  EXPECT_EQ(e.http_status, 400);
  EXPECT_EQ(e.param, "");
  EXPECT_TRUE(Contains(e.message, "request body is not valid JSON (at byte 29)")) << e.message;
  EXPECT_FALSE(Contains(e.message, "[json.exception")) << e.message;

  const ApiError empty = CompletionError("");
  EXPECT_TRUE(Contains(empty.message, "not valid JSON (at byte 1)")) << empty.message;
  const ApiError truncated = CompletionError(R"({"model":"m","prompt":"ab)");
  EXPECT_TRUE(Contains(truncated.message, "at byte")) << truncated.message;
}

TEST(ServeApiRequest, NonObjectBodiesAndOddJsonAreErrors) {
  EXPECT_EQ(ChatError("[]").message, "must be a JSON object, got an array");
  EXPECT_EQ(ChatError("42").message, "must be a JSON object, got 42");
  EXPECT_TRUE(Contains(ChatError(R"({"model":"m","temperature":1e999})").message, "not valid JSON"));
  EXPECT_TRUE(Contains(ChatError("{\"model\":\"\xff\"}").message, "not valid JSON"));
  EXPECT_TRUE(Contains(ChatError(std::string(100000, '[')).message, "not valid JSON"));
}

TEST(ServeApiRequest, DeeplyNestedIgnoredFieldIsFine) {
  const std::string deep = std::string(20000, '[') + std::string(20000, ']');
  const std::string body =
      std::string(R"({"model":"m","messages":[{"role":"user","content":"x"}],"extra":)") + deep +
      "}";
  EXPECT_TRUE(ParseChatCompletionRequest(body).ok());
  const ApiError e = ChatError(
      std::string(R"({"model":"m","messages":[{"role":"user","content":"x"}],"temperature":)") +
      deep + "}");
  EXPECT_EQ(e.message, "temperature: must be a number in [0, 2], got an array");
}

TEST(ServeApiRequest, BearerTokenAndConstantTimeEquals) {
  EXPECT_EQ(BearerToken("Bearer sk-123"), "sk-123");
  EXPECT_EQ(BearerToken("bearer  sk-123 "), "sk-123");
  EXPECT_EQ(BearerToken("Basic abc"), "");
  EXPECT_EQ(BearerToken("Bearer "), "");
  EXPECT_EQ(BearerToken(""), "");
  EXPECT_TRUE(ConstantTimeEquals("key-a", "key-a"));
  EXPECT_FALSE(ConstantTimeEquals("key-a", "key-b"));
  EXPECT_FALSE(ConstantTimeEquals("key-a", "key-ab"));
  EXPECT_FALSE(ConstantTimeEquals("", "x"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
}

// ---------------------------------------------------------------------------
// Responses

Timings SomeTimings() {
  Timings t;
  t.cache_n = 256;
  t.pool_n = 200;
  t.prompt_n = 44;
  t.prompt_ms = 20;
  t.queue_ms = 1.5;
  t.restore_ms = 3;
  t.predicted_n = 10;
  t.predicted_ms = 100;
  return t;
}

void ExpectEnvelope(const json& j, const std::string& object, const std::string& id_prefix) {
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j.at("object"), object);
  ASSERT_TRUE(j.at("id").is_string());
  EXPECT_EQ(j.at("id").get<std::string>().rfind(id_prefix, 0), 0u) << j.at("id");
  EXPECT_GT(j.at("id").get<std::string>().size(), id_prefix.size() + 8);
  EXPECT_TRUE(j.at("created").is_number_integer());
  EXPECT_GT(j.at("created").get<int64_t>(), 1600000000);
  EXPECT_EQ(j.at("model"), "m");
  EXPECT_TRUE(j.at("choices").is_array());
}

void ExpectTimings(const json& t) {
  for (const char* k : {"cache_n", "prompt_n", "prompt_ms", "prompt_per_second", "predicted_n",
                        "predicted_ms", "predicted_per_second", "pool_n", "queue_ms",
                        "restore_ms"}) {
    EXPECT_TRUE(t.contains(k)) << k;
    EXPECT_TRUE(t.at(k).is_number()) << k;
  }
  EXPECT_EQ(t.at("cache_n"), 256);
  EXPECT_EQ(t.at("pool_n"), 200);
  EXPECT_DOUBLE_EQ(t.at("prompt_per_second").get<double>(), 44 / 0.020);
  EXPECT_DOUBLE_EQ(t.at("predicted_per_second").get<double>(), 100.0);
}

TEST(ServeApiResponse, ChatCompletionShape) {
  const ResponseHeader h = NewResponseHeader(Endpoint::kChat, "m", false);
  const json j = CompletionBody(h, "Hello!", "stop", SomeTimings());
  ExpectEnvelope(j, "chat.completion", "chatcmpl-");
  ASSERT_EQ(j["choices"].size(), 1u);
  const json& c = j["choices"][0];
  EXPECT_EQ(c["index"], 0);
  EXPECT_EQ(c["message"]["role"], "assistant");
  EXPECT_EQ(c["message"]["content"], "Hello!");
  EXPECT_EQ(c["finish_reason"], "stop");
  EXPECT_EQ(j["usage"]["prompt_tokens"], 300);
  EXPECT_EQ(j["usage"]["completion_tokens"], 10);
  EXPECT_EQ(j["usage"]["total_tokens"], 310);
  EXPECT_EQ(j["usage"]["prompt_tokens_details"]["cached_tokens"], 256);
  ExpectTimings(j["timings"]);
}

TEST(ServeApiResponse, TextCompletionShape) {
  const ResponseHeader h = NewResponseHeader(Endpoint::kCompletion, "m", false);
  const json j = CompletionBody(h, " there", "length", SomeTimings());
  ExpectEnvelope(j, "text_completion", "cmpl-");
  const json& c = j["choices"][0];
  EXPECT_EQ(c["text"], " there");
  EXPECT_TRUE(c["logprobs"].is_null());
  EXPECT_EQ(c["finish_reason"], "length");
  EXPECT_FALSE(c.contains("message"));
  ExpectTimings(j["timings"]);
}

TEST(ServeApiResponse, ChatStreamChunks) {
  const ResponseHeader h = NewResponseHeader(Endpoint::kChat, "m", false);
  const json role = RoleChunk(h);
  ExpectEnvelope(role, "chat.completion.chunk", "chatcmpl-");
  EXPECT_EQ(role["choices"][0]["delta"]["role"], "assistant");
  EXPECT_TRUE(role["choices"][0]["finish_reason"].is_null());
  EXPECT_FALSE(role.contains("usage"));

  const json content = ContentChunk(h, "Hi");
  EXPECT_EQ(content["choices"][0]["delta"]["content"], "Hi");
  EXPECT_FALSE(content["choices"][0]["delta"].contains("role"));
  EXPECT_EQ(content["id"], role["id"]);

  const json finish = FinishChunk(h, "stop", SomeTimings());
  EXPECT_TRUE(finish["choices"][0]["delta"].is_object());
  EXPECT_TRUE(finish["choices"][0]["delta"].empty());
  EXPECT_EQ(finish["choices"][0]["finish_reason"], "stop");
  ExpectTimings(finish["timings"]);
}

TEST(ServeApiResponse, IncludeUsageAddsNullUsageAndAUsageChunk) {
  const ResponseHeader h = NewResponseHeader(Endpoint::kChat, "m", true);
  EXPECT_TRUE(ContentChunk(h, "x").at("usage").is_null());
  const json usage = UsageChunk(h, SomeTimings());
  ExpectEnvelope(usage, "chat.completion.chunk", "chatcmpl-");
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["total_tokens"], 310);
}

TEST(ServeApiResponse, TextStreamChunks) {
  const ResponseHeader h = NewResponseHeader(Endpoint::kCompletion, "m", false);
  const json piece = ContentChunk(h, "ab");
  ExpectEnvelope(piece, "text_completion", "cmpl-");
  EXPECT_EQ(piece["choices"][0]["text"], "ab");
  EXPECT_FALSE(piece["choices"][0].contains("delta"));
  const json finish = FinishChunk(h, "length", SomeTimings());
  EXPECT_EQ(finish["choices"][0]["text"], "");
  EXPECT_EQ(finish["choices"][0]["finish_reason"], "length");
}

TEST(ServeApiResponse, SseFraming) {
  const std::string e = SseEvent({{"a", 1}});
  EXPECT_EQ(e, "data: {\"a\":1}\n\n");
  EXPECT_EQ(std::string(kSseDone), "data: [DONE]\n\n");
  // Newlines in text are escaped: one event is one line.
  const std::string text = SseEvent(ContentChunk(NewResponseHeader(Endpoint::kChat, "m", false),
                                                 "line1\nline2\r\n\n"));
  EXPECT_EQ(text.find('\n'), text.size() - 2);
  EXPECT_EQ(json::parse(text.substr(6))["choices"][0]["delta"]["content"], "line1\nline2\r\n\n");
}

TEST(ServeApiResponse, InvalidUtf8InTextIsReplacedNotThrown) {
  const ResponseHeader h = NewResponseHeader(Endpoint::kChat, "m", false);
  std::string s;
  ASSERT_NO_THROW(s = JsonText(ContentChunk(h, "ok\xff\xfe")));
  EXPECT_TRUE(Contains(s, "ok\xEF\xBF\xBD")) << s;
  json parsed;
  EXPECT_NO_THROW(parsed = json::parse(s));
}

TEST(ServeApiResponse, ErrorBodyAndStatusMapping) {
  ApiError e;
  e.message = "temperature: bad";
  e.param = "temperature";
  const json b = ErrorBody(e);
  EXPECT_EQ(b["error"]["message"], "temperature: bad");
  EXPECT_EQ(b["error"]["type"], "invalid_request_error");
  EXPECT_EQ(b["error"]["param"], "temperature");
  EXPECT_TRUE(b["error"]["code"].is_null());

  struct Case {
    Status status;
    int http;
    std::string code;
  };
  for (const Case& c : std::vector<Case>{
           {Status::InvalidArgument("x"), 400, ""},
           {Status::NotFound("x"), 404, ""},
           {Status::NoSpace("prompt 9000 > 4096"), 413, "context_length_exceeded"},
           {Status::Busy("queue full (64)"), 429, "queue_full"},
           {Status::Aborted("shutting down"), 503, "unavailable"},
           {Status::Unsupported("x"), 501, ""},
           {Status::IOError("disk"), 500, ""},
       }) {
    const ApiError m = ErrorFromStatus(c.status);
    EXPECT_EQ(m.http_status, c.http) << c.status.ToString();
    EXPECT_EQ(m.code, c.code) << c.status.ToString();
    EXPECT_FALSE(m.message.empty());
    EXPECT_EQ(m.type, c.http >= 500 ? "server_error"
                      : c.http == 429 ? "rate_limit_error"
                                      : "invalid_request_error");
  }
  EXPECT_EQ(ErrorFromStatus(Status::Busy("queue full (64)")).message, "queue full (64)");
  EXPECT_EQ(ErrorFromStatus(Status::IOError("disk")).message, "I/O error: disk");
}

TEST(ServeApiResponse, ModelsAndSlotsBodies) {
  const json models = ModelsBody("tiny", 1700000000);
  EXPECT_EQ(models["object"], "list");
  ASSERT_EQ(models["data"].size(), 1u);
  EXPECT_EQ(models["data"][0]["id"], "tiny");
  EXPECT_EQ(models["data"][0]["object"], "model");
  EXPECT_EQ(models["data"][0]["created"], 1700000000);
  EXPECT_EQ(models["data"][0]["owned_by"], "kvpool");

  SlotInfo busy;
  busy.id = 1;
  busy.state = "generating";
  busy.n_ctx = 2048;
  busy.n_past = 300;
  SlotInfo idle;
  idle.state = "idle";
  const json slots = SlotsBody({idle, busy});
  ASSERT_EQ(slots.size(), 2u);
  EXPECT_EQ(slots[1]["id"], 1);
  EXPECT_EQ(slots[1]["state"], "generating");
  EXPECT_EQ(slots[1]["is_processing"], true);
  EXPECT_EQ(slots[0]["is_processing"], false);
  EXPECT_EQ(slots[1]["n_past"], 300);
  for (const char* k : {"n_ctx", "prompt_tokens", "cached_tokens", "generated"}) {
    EXPECT_TRUE(slots[0].contains(k)) << k;
  }
}

TEST(ServeApiResponse, IdsAreFreshHex) {
  std::set<std::string> ids;
  for (int i = 0; i < 100; ++i) ids.insert(NewResponseHeader(Endpoint::kChat, "m", false).id);
  EXPECT_EQ(ids.size(), 100u);
  EXPECT_TRUE(std::regex_match(*ids.begin(), std::regex("chatcmpl-[0-9a-f]{24}")));
}

// ---------------------------------------------------------------------------
// Prometheus text

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

TEST(ServeMetrics, EveryFamilyHasHelpAndTypeAndCountersEndInTotal) {
  SchedulerStats s;
  s.requests = 7;
  s.prompt_seconds = 1.5;
  s.queued = 3;
  PoolStats pool;
  pool.chunks = 12;
  DeviceStats d;
  d.name = "dram0";
  d.kind = "dram";
  d.role = "cache";
  d.bytes_read = 4096;
  pool.devices = {d, d};
  pool.devices[1].name = "ssd0";
  const std::string text = PrometheusText(s, &pool);
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');

  const std::regex help(R"(# HELP ([a-z_]+) .+)");
  const std::regex type(R"(# TYPE ([a-z_]+) (counter|gauge))");
  const std::regex sample(R"(([a-z_]+)(\{[^}]*\})? (\S+))");
  std::set<std::string> helped, typed;
  for (const std::string& line : Lines(text)) {
    std::smatch m;
    if (std::regex_match(line, m, help)) {
      EXPECT_TRUE(helped.insert(m[1]).second) << "HELP twice: " << line;
    } else if (std::regex_match(line, m, type)) {
      EXPECT_TRUE(typed.insert(m[1]).second) << "TYPE twice: " << line;
      EXPECT_EQ(m[2] == "counter", m[1].str().ends_with("_total")) << line;
    } else {
      ASSERT_TRUE(std::regex_match(line, m, sample)) << "bad line: " << line;
      EXPECT_TRUE(helped.count(m[1]) && typed.count(m[1])) << "no HELP/TYPE before " << line;
      const std::string name = m[1];
      EXPECT_TRUE(name.starts_with("kvpool_serve_") || name.starts_with("kvpool_pool_")) << line;
    }
  }
  EXPECT_TRUE(Contains(text, "\nkvpool_serve_requests_total 7\n"));
  EXPECT_TRUE(Contains(text, "\nkvpool_serve_prompt_seconds_total 1.5\n"));
  EXPECT_TRUE(Contains(text, "\nkvpool_serve_queued_requests 3\n"));
  EXPECT_TRUE(Contains(text, "\nkvpool_pool_chunks 12\n"));
  EXPECT_TRUE(Contains(text, "# TYPE kvpool_serve_requests_total counter\n"));
  EXPECT_TRUE(Contains(
      text, "\nkvpool_pool_device_read_bytes_total{device=\"dram0\",kind=\"dram\",role=\"cache\"} 4096\n"));
  EXPECT_TRUE(Contains(text, "{device=\"ssd0\",kind=\"dram\",role=\"cache\"}"));
}

TEST(ServeMetrics, LabelValuesAreEscaped) {
  EXPECT_EQ(EscapeLabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  PoolStats pool;
  DeviceStats d;
  d.name = "we\"ird\\name\n";
  d.kind = "file";
  d.role = "home";
  pool.devices = {d};
  const std::string text = PrometheusText(SchedulerStats{}, &pool);
  EXPECT_TRUE(Contains(text, "device=\"we\\\"ird\\\\name\\n\",kind=\"file\",role=\"home\""));
  for (const std::string& line : Lines(text)) EXPECT_FALSE(line.empty());
}

TEST(ServeMetrics, WithoutAPoolOnlyServeFamilies) {
  const std::string text = PrometheusText(SchedulerStats{}, nullptr);
  EXPECT_TRUE(Contains(text, "kvpool_serve_requests_total 0\n"));
  EXPECT_FALSE(Contains(text, "kvpool_pool_"));
}

// ---------------------------------------------------------------------------
// Stop strings and UTF-8

// Feeds `pieces` and returns what was emitted, Finish included.
std::string FeedAll(StopMatcher& m, const std::vector<std::string>& pieces) {
  std::string out;
  for (const std::string& p : pieces) out += m.Feed(p).text;
  return out + m.Finish();
}

TEST(ServeStopMatcher, WithoutStopsTextPassesThrough) {
  StopMatcher m({});
  EXPECT_EQ(m.Feed("Hel").text, "Hel");
  EXPECT_EQ(m.Feed("lo").text, "lo");
  EXPECT_EQ(m.Finish(), "");
  EXPECT_FALSE(m.stopped());
}

TEST(ServeStopMatcher, StopAcrossTokenBoundaries) {
  StopMatcher m({"END"});
  StopMatcher::Output a = m.Feed("abc E");
  EXPECT_EQ(a.text, "abc ");
  EXPECT_FALSE(a.stopped);
  EXPECT_EQ(m.held_bytes(), 1u);
  EXPECT_EQ(m.Feed("N").text, "");
  StopMatcher::Output c = m.Feed("D and more");
  EXPECT_TRUE(c.stopped);
  EXPECT_EQ(c.text, "");
  EXPECT_EQ(m.matched_stop(), "END");
  EXPECT_EQ(m.Finish(), "");
  EXPECT_TRUE(m.Feed("later").stopped);
  EXPECT_EQ(m.Feed("later").text, "");
}

TEST(ServeStopMatcher, AHeldPrefixThatDoesNotMatchIsReleased) {
  StopMatcher m({"END"});
  EXPECT_EQ(m.Feed("a E").text, "a ");
  EXPECT_EQ(m.Feed("Nx").text, "ENx");
  EXPECT_EQ(m.Feed("EN").text, "");
  EXPECT_EQ(m.Finish(), "EN");  // end of generation: the held prefix is text
}

TEST(ServeStopMatcher, TextBeforeAStopInOnePieceIsEmitted) {
  StopMatcher m({"STOP", "\n\n"});
  StopMatcher::Output o = m.Feed("hello\n\nSTOP world");
  EXPECT_TRUE(o.stopped);
  EXPECT_EQ(o.text, "hello");
  EXPECT_EQ(m.matched_stop(), "\n\n");
}

TEST(ServeStopMatcher, EmptyStopStringsAreIgnored) {
  StopMatcher m({"", "zz"});
  EXPECT_EQ(FeedAll(m, {"abc"}), "abc");
}

TEST(ServeStopMatcher, Utf8CharacterSplitAcrossTokens) {
  StopMatcher m({});
  EXPECT_EQ(m.Feed("caf\xC3").text, "caf");
  EXPECT_EQ(m.Feed("\xA9!").text, "\xC3\xA9!");
  // A 4-byte emoji in three pieces.
  EXPECT_EQ(m.Feed("\xF0\x9F").text, "");
  EXPECT_EQ(m.Feed("\x98").text, "");
  EXPECT_EQ(m.Feed("\x80 ok").text, "\xF0\x9F\x98\x80 ok");
}

TEST(ServeStopMatcher, FinishReplacesAnIncompleteTail) {
  StopMatcher m({});
  EXPECT_EQ(m.Feed("ab\xE2\x82").text, "ab");
  EXPECT_EQ(m.Finish(), kReplacementCharacter);
  EXPECT_EQ(m.held_bytes(), 0u);
}

TEST(ServeStopMatcher, InvalidBytesBecomeReplacementCharacters) {
  EXPECT_EQ(SanitizeUtf8("a\xFF" "b"), "a\xEF\xBF\xBD" "b");
  // A surrogate (ED A0 80): three maximal invalid subparts.
  EXPECT_EQ(SanitizeUtf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  // An overlong '/' (C0 AF) and a lead byte cut by ASCII.
  EXPECT_EQ(SanitizeUtf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(SanitizeUtf8("\xE2\x82x"), "\xEF\xBF\xBDx");
  // Above U+10FFFF (F4 90 ...): every byte is its own invalid subpart.
  std::string four;
  for (int i = 0; i < 4; ++i) four += kReplacementCharacter;
  EXPECT_EQ(SanitizeUtf8("\xF4\x90\x80\x80"), four);
  StopMatcher m({});
  EXPECT_EQ(m.Feed("\x80x").text, "\xEF\xBF\xBDx");
}

TEST(ServeStopMatcher, MultibyteStopSplitAcrossTokens) {
  StopMatcher m({"\xE2\x80\x94stop"});  // "—stop"
  EXPECT_EQ(m.Feed("x\xE2").text, "x");
  EXPECT_EQ(m.Feed("\x80\x94st").text, "");
  EXPECT_TRUE(m.Feed("op").stopped);
  EXPECT_EQ(m.Finish(), "");
}

TEST(ServeStopMatcher, CompleteUtf8Prefix) {
  EXPECT_EQ(CompleteUtf8Prefix("abc"), 3u);
  EXPECT_EQ(CompleteUtf8Prefix("ab\xC3"), 2u);
  EXPECT_EQ(CompleteUtf8Prefix("ab\xF0\x9F\x98"), 2u);
  EXPECT_EQ(CompleteUtf8Prefix("ab\xF0\x9F\x98\x80"), 6u);
  EXPECT_EQ(CompleteUtf8Prefix("ab\xFF"), 3u);      // invalid, not incomplete
  EXPECT_EQ(CompleteUtf8Prefix("ab\xE0\x80"), 4u);  // E0 80 can never complete
  EXPECT_EQ(CompleteUtf8Prefix(""), 0u);
}

// The matcher against a direct computation: the first stop to complete
// ends the text at its earliest occurrence in what was fed so far.
TEST(ServeStopMatcher, RandomPiecesMatchAReference) {
  std::mt19937 rng(12345);
  const std::string alphabet[] = {"a", "b", "E", "N", "D", "\xC3\xA9", "\xE2\x82\xAC",
                                  "\xF0\x9F\x98\x80", "\xFF", "\n"};
  for (int round = 0; round < 3000; ++round) {
    std::string text;
    const int len = static_cast<int>(rng() % 40);
    for (int i = 0; i < len; ++i) text += alphabet[rng() % std::size(alphabet)];
    std::vector<std::string> stops;
    const int n_stops = static_cast<int>(rng() % 3);
    for (int s = 0; s < n_stops; ++s) {
      std::string stop;
      const int stop_len = 1 + static_cast<int>(rng() % 3);
      for (int i = 0; i < stop_len; ++i) stop += alphabet[rng() % 6];
      stops.push_back(stop);
    }
    StopMatcher m(stops);
    std::string emitted;
    std::string fed;
    size_t expected_end = std::string::npos;
    size_t at = 0;
    while (at < text.size()) {
      const size_t n = std::min(text.size() - at, size_t{1} + rng() % 5);
      fed += text.substr(at, n);
      at += n;
      StopMatcher::Output o = m.Feed(text.substr(at - n, n));
      emitted += o.text;
      for (const std::string& s : stops) expected_end = std::min(expected_end, fed.find(s));
      ASSERT_EQ(o.stopped, expected_end != std::string::npos) << round;
      if (o.stopped) break;
    }
    emitted += m.Finish();
    const std::string expected =
        SanitizeUtf8(expected_end == std::string::npos ? text : fed.substr(0, expected_end));
    ASSERT_EQ(emitted, expected) << "round " << round << " text " << text;
  }
}

// ---------------------------------------------------------------------------
// Deterministic mutations: any body gives a value or a 400 with a message.

std::vector<std::string> SeedBodies() {
  return {
      kMinimalChat,
      kMinimalCompletion,
      R"({"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}],"stream":true,"stream_options":{"include_usage":true}})",
      R"({"model":"m","messages":[{"role":"assistant","content":null},{"role":"tool","content":"r"}],"temperature":0.2,"top_p":0.5,"top_k":10,"seed":1})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"stop":["a","b"],"max_tokens":16})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"stop":"##","max_completion_tokens":4,"n":1})",
      R"({"model":"m","messages":[{"role":"developer","content":"d"}],"response_format":{"type":"text"},"logit_bias":{"1":2}})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"user":"u","frequency_penalty":1,"presence_penalty":-1})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"logprobs":false,"top_logprobs":0})",
      R"({"model":"m","prompt":["one"],"max_tokens":3,"temperature":0})",
      R"({"model":"m","prompt":[1,2,3,4],"stream":true})",
      R"({"model":"m","prompt":[[5,6]],"echo":false,"best_of":1,"logprobs":null,"suffix":""})",
      R"({"model":"m","prompt":"p","stop":["\n"],"seed":4294967295})",
      R"({"model":"m","prompt":"caf\u00e9 \ud83d\ude00","top_k":0})",
      R"({"model":"m","messages":[{"role":"user","content":"\u0000\"\\"}]})",
      R"({"model":"m","messages":[]})",
      R"({"model":5,"prompt":""})",
      R"([{"model":"m"}])",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"extra":{"deep":[[[[{"a":[1,2,{"b":null}]}]]]]}})",
      R"({})",
  };
}

json RandomValue(std::mt19937& rng) {
  switch (rng() % 12) {
    case 0: return nullptr;
    case 1: return rng() % 2 == 0;
    case 2: return static_cast<int64_t>(rng()) - (1LL << 31);
    case 3: return -1;
    case 4: return 1e300;
    case 5: return 0.5;
    case 6: return "";
    case 7: return "text";
    case 8: return json::array();
    case 9: return json::array({1, "a"});
    case 10: return json::object();
    default: return 18446744073709551615u;
  }
}

// Replaces one random value inside `j` (recursing into containers).
void SwapRandomValue(json& j, std::mt19937& rng, int depth = 0) {
  if ((j.is_object() || j.is_array()) && !j.empty() && depth < 6 && rng() % 4 != 0) {
    auto it = j.begin();
    std::advance(it, static_cast<long>(rng() % j.size()));
    SwapRandomValue(*it, rng, depth + 1);
    return;
  }
  j = RandomValue(rng);
}

std::string MutateBytes(std::string s, std::mt19937& rng) {
  static const std::string kPunctuation = "{}[]:,\"\\ 0123456789eE.-+ntfu\xff\xc3";
  const size_t n = s.size();
  switch (rng() % 5) {
    case 0:
      if (n > 0) s[rng() % n] = static_cast<char>(rng() % 256);
      break;
    case 1:
      s.resize(n > 0 ? rng() % n : 0);
      break;
    case 2:
      s.insert(n > 0 ? rng() % (n + 1) : 0, 1, kPunctuation[rng() % kPunctuation.size()]);
      break;
    case 3:
      if (n > 1) s.erase(rng() % n, 1 + rng() % 8);
      break;
    default:
      if (n > 1) {
        const size_t from = rng() % n;
        s.insert(rng() % n, s.substr(from, 1 + rng() % 16));
      }
      break;
  }
  return s;
}

std::string Mutate(const std::string& seed, std::mt19937& rng) {
  std::string s = seed;
  if (rng() % 2 == 0) {
    json j = json::parse(s, nullptr, /*allow_exceptions=*/false);
    if (!j.is_discarded()) {
      SwapRandomValue(j, rng);
      s = j.dump();
    }
  }
  const int byte_mutations = static_cast<int>(rng() % 4);
  for (int i = 0; i < byte_mutations; ++i) s = MutateBytes(std::move(s), rng);
  return s;
}

template <typename Parse>
void ExpectValueOrError(const std::string& body, Parse parse, int* accepted) {
  ApiError e;
  auto r = parse(body, &e);
  if (r.ok()) {
    ++*accepted;
    return;
  }
  ASSERT_TRUE(e.http_status == 400 || e.http_status == 413) << body;
  ASSERT_FALSE(e.message.empty()) << body;
  ASSERT_EQ(r.status().message(), e.message);
  // The error body is always serializable.
  ASSERT_NO_THROW((void)JsonText(ErrorBody(e)));
}

TEST(ServeApiFuzz, MutatedBodiesGiveAValueOrANamedError) {
  std::mt19937 rng(20240601);
  const std::vector<std::string> seeds = SeedBodies();
  int accepted_chat = 0;
  int accepted_completion = 0;
  for (int i = 0; i < 20000; ++i) {
    const std::string body = Mutate(seeds[rng() % seeds.size()], rng);
    ExpectValueOrError(body, ParseChatCompletionRequest, &accepted_chat);
    ExpectValueOrError(body, ParseCompletionRequest, &accepted_completion);
    StopMatcher m({body.substr(0, std::min<size_t>(body.size(), 3))});
    const size_t cut = body.empty() ? 0 : rng() % body.size();
    std::string out = m.Feed(body.substr(0, cut)).text;
    out += m.Feed(body.substr(cut)).text + m.Finish();
    ASSERT_EQ(SanitizeUtf8(out), out);
  }
  // The run exercised both outcomes.
  EXPECT_GT(accepted_chat, 100);
  EXPECT_GT(accepted_completion, 100);
}

}  // namespace
}  // namespace kvpool::serve
