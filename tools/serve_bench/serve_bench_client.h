// The client side of `kvpool bench serve`: one OpenAI-style chat completion
// at a time over HTTP, streamed (server-sent events), timed.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace kvpool::cli {

// One streamed chat completion.
//
// TTFT is the time from just before the request is sent to the arrival of
// the first SSE `data:` chunk whose choices[0].delta.content is a non-empty
// string (a chunk that only carries the role does not count). When no chunk
// carries content (the model ended at once), TTFT is the arrival of the
// chunk with a finish_reason, and `ttft_from_content` is false.
//
// Token counts come from the final chunk: `timings` (llama-server's cache_n,
// and prompt_n, the tokens it computed) when present, else OpenAI `usage`
// (prompt_tokens and prompt_tokens_details.cached_tokens).
struct ServeChatSample {
  double ttft_seconds = 0;
  double total_seconds = 0;  // until the response was complete
  bool ttft_from_content = true;
  uint64_t cached_tokens = 0;  // prompt tokens the server did not compute
  uint64_t prompt_tokens = 0;  // all prompt tokens (cached + computed)
  uint64_t generated_tokens = 0;
  std::string error;  // empty when the request succeeded
  bool ok() const { return error.empty(); }
};

// A server on 127.0.0.1-style `host`:`port`. Each call opens its own
// connection; calls are sequential.
class ServeChatClient {
 public:
  ServeChatClient(std::string host, int port) : host_(std::move(host)), port_(port) {}
  // GET /health answered 200.
  bool Healthy() const;
  // The first model id GET /v1/models lists; "" when there is none.
  std::string ModelId() const;
  // POST /v1/chat/completions with `body` plus "stream": true and usage
  // requested; waits for the whole response (read timeout: 15 minutes).
  ServeChatSample Chat(nlohmann::json body) const;

 private:
  std::string host_;
  int port_;
};

// A TCP port on 127.0.0.1 that nothing listened on a moment ago.
int UnusedLocalPort();

}  // namespace kvpool::cli
