// libFuzzer entry point for kvpool serve's request-facing code: both OpenAI
// request parsers, the stop matcher over the input cut into pieces, and the
// JSON of the resulting responses. Any crash, sanitizer report or broken
// invariant (checked with __builtin_trap) is a finding. scripts/fuzz.sh
// builds and runs it.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "api_request.h"
#include "api_response.h"
#include "stop_matcher.h"

namespace kvpool::serve {
namespace {

void Check(bool invariant) {
  if (!invariant) __builtin_trap();
}

template <typename Parsed>
void CheckOutcome(const Result<Parsed>& r, const ApiError& error) {
  if (r.ok()) return;
  Check(error.http_status == 400 || error.http_status == 413);
  Check(!error.message.empty());
  Check(r.status().message() == error.message);
  (void)JsonText(ErrorBody(error));
}

// The first bytes choose the stop strings (valid UTF-8, as a parsed request
// has) and piece lengths; the rest is the generated text.
void FuzzStopMatcher(std::string_view input) {
  if (input.empty()) return;
  const size_t n_stops = static_cast<uint8_t>(input[0]) % 4;
  input.remove_prefix(1);
  std::vector<std::string> stops;
  for (size_t i = 0; i < n_stops && !input.empty(); ++i) {
    const size_t len = std::min<size_t>(input.size(), 1 + static_cast<uint8_t>(input[0]) % 6);
    stops.push_back(SanitizeUtf8(input.substr(1, len - 1)));
    input.remove_prefix(len);
  }
  StopMatcher matcher(stops);
  std::string emitted;
  size_t step = 1;
  while (!input.empty() && !matcher.stopped()) {
    const size_t len = std::min(input.size(), step);
    emitted += matcher.Feed(input.substr(0, len)).text;
    input.remove_prefix(len);
    step = step % 7 + 1;
  }
  emitted += matcher.Finish();
  Check(SanitizeUtf8(emitted) == emitted);
  // No stop string in the output (unless it holds U+FFFD, which
  // replacement of invalid input bytes can produce).
  for (const std::string& stop : stops) {
    if (stop.empty() || stop.find(kReplacementCharacter) != std::string::npos) continue;
    Check(emitted.find(stop) == std::string::npos);
  }
  const ResponseHeader header = NewResponseHeader(Endpoint::kChat, "m", true);
  (void)SseEvent(ContentChunk(header, emitted));
}

}  // namespace
}  // namespace kvpool::serve

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kvpool::serve;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  ApiError chat_error;
  CheckOutcome(ParseChatCompletionRequest(input, &chat_error), chat_error);
  ApiError completion_error;
  CheckOutcome(ParseCompletionRequest(input, &completion_error), completion_error);
  FuzzStopMatcher(input);
  return 0;
}
