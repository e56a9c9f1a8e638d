#include "serve_bench_client.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

namespace kvpool::cli {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Splits a byte stream of server-sent events into the payloads of its
// `data:` lines, in order; other lines (comments, event names, blanks) are
// skipped. `error:` lines (llama-server's mid-stream errors) are kept apart.
class SseLines {
 public:
  template <typename OnData>
  void Feed(const char* bytes, size_t n, OnData&& on_data) {
    pending_.append(bytes, n);
    size_t start = 0;
    for (size_t end; (end = pending_.find('\n', start)) != std::string::npos; start = end + 1) {
      std::string line = pending_.substr(start, end - start);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.rfind("data:", 0) == 0) on_data(Payload(line, 5));
      if (line.rfind("error:", 0) == 0) errors_ += Payload(line, 6);
    }
    pending_.erase(0, start);
  }
  const std::string& errors() const { return errors_; }
  const std::string& rest() const { return pending_; }

 private:
  static std::string Payload(const std::string& line, size_t prefix) {
    size_t from = line.size() > prefix && line[prefix] == ' ' ? prefix + 1 : prefix;
    return line.substr(from);
  }
  std::string pending_;
  std::string errors_;
};

bool CarriesContent(const nlohmann::json& chunk) {
  const auto choices = chunk.find("choices");
  if (choices == chunk.end() || !choices->is_array() || choices->empty()) return false;
  const nlohmann::json& delta = (*choices)[0].value("delta", nlohmann::json::object());
  const auto content = delta.find("content");
  return content != delta.end() && content->is_string() && !content->get<std::string>().empty();
}

bool Finishes(const nlohmann::json& chunk) {
  const auto choices = chunk.find("choices");
  if (choices == chunk.end() || !choices->is_array() || choices->empty()) return false;
  const auto reason = (*choices)[0].find("finish_reason");
  return reason != (*choices)[0].end() && reason->is_string();
}

// Token counts of a chunk that reports them (see ServeChatSample).
void ReadTokenCounts(const nlohmann::json& chunk, ServeChatSample* s) {
  if (const auto t = chunk.find("timings"); t != chunk.end() && t->is_object()) {
    s->cached_tokens = t->value("cache_n", uint64_t{0});
    s->prompt_tokens = s->cached_tokens + t->value("prompt_n", uint64_t{0});
    s->generated_tokens = t->value("predicted_n", s->generated_tokens);
    return;
  }
  if (const auto u = chunk.find("usage"); u != chunk.end() && u->is_object()) {
    s->prompt_tokens = u->value("prompt_tokens", uint64_t{0});
    s->generated_tokens = u->value("completion_tokens", uint64_t{0});
    const nlohmann::json details = u->value("prompt_tokens_details", nlohmann::json::object());
    s->cached_tokens = details.is_object() ? details.value("cached_tokens", uint64_t{0}) : 0;
  }
}

// Follows one streamed response: TTFT and token counts.
class StreamObserver {
 public:
  StreamObserver(Clock::time_point sent, ServeChatSample* s) : sent_(sent), s_(s) {}
  void OnData(const std::string& payload) {
    if (payload == "[DONE]") return;
    nlohmann::json chunk = nlohmann::json::parse(payload, nullptr, false);
    if (chunk.is_discarded() || !chunk.is_object()) {
      s_->error = "not JSON in the event stream: " + payload.substr(0, 200);
      return;
    }
    if (chunk.contains("error")) s_->error = chunk["error"].dump().substr(0, 400);
    if (!content_seen_ && CarriesContent(chunk)) {
      content_seen_ = true;
      s_->ttft_seconds = SecondsSince(sent_);
    }
    if (!content_seen_ && !finish_seen_ && Finishes(chunk)) finish_at_ = SecondsSince(sent_);
    finish_seen_ = finish_seen_ || Finishes(chunk);
    ReadTokenCounts(chunk, s_);
  }
  void Finish() {
    if (content_seen_) return;
    s_->ttft_from_content = false;
    s_->ttft_seconds = finish_seen_ ? finish_at_ : s_->total_seconds;
  }

 private:
  Clock::time_point sent_;
  ServeChatSample* s_;
  bool content_seen_ = false;
  bool finish_seen_ = false;
  double finish_at_ = 0;
};

}  // namespace

bool ServeChatClient::Healthy() const {
  httplib::Client client(host_, port_);
  client.set_connection_timeout(2, 0);
  client.set_read_timeout(5, 0);
  httplib::Result r = client.Get("/health");
  return r && r->status == 200;
}

std::string ServeChatClient::ModelId() const {
  httplib::Client client(host_, port_);
  client.set_connection_timeout(2, 0);
  client.set_read_timeout(10, 0);
  httplib::Result r = client.Get("/v1/models");
  if (!r || r->status != 200) return "";
  const nlohmann::json models = nlohmann::json::parse(r->body, nullptr, false);
  if (!models.is_object() || !models.contains("data") || !models["data"].is_array() ||
      models["data"].empty() || !models["data"][0].is_object()) {
    return "";
  }
  return models["data"][0].value("id", std::string());
}

ServeChatSample ServeChatClient::Chat(nlohmann::json body) const {
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  httplib::Client client(host_, port_);
  client.set_connection_timeout(10, 0);
  client.set_read_timeout(900, 0);
  client.set_keep_alive(false);

  ServeChatSample sample;
  SseLines lines;
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/chat/completions";
  req.headers = {{"Content-Type", "application/json"}, {"Accept", "text/event-stream"}};
  req.body = body.dump();
  const Clock::time_point sent = Clock::now();
  StreamObserver observer(sent, &sample);
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    lines.Feed(data, n, [&](const std::string& payload) { observer.OnData(payload); });
    return true;
  };
  httplib::Result r = client.send(req);
  sample.total_seconds = SecondsSince(sent);
  observer.Finish();
  if (!r) {
    sample.error = "HTTP request failed: " + httplib::to_string(r.error());
  } else if (r->status != 200) {
    sample.error = "HTTP " + std::to_string(r->status) + ": " + (lines.rest() + r->body).substr(0, 400);
  } else if (!lines.errors().empty()) {
    sample.error = "stream error: " + lines.errors().substr(0, 400);
  }
  return sample;
}

int UnusedLocalPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

}  // namespace kvpool::cli
