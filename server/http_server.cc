#include "http_server.h"

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <optional>
#include <set>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <variant>

// Debian's libcpp-httplib.so is built with OpenSSL, zlib and Brotli support,
// and httplib's class layouts depend on it: the PkgConfig::HTTPLIB target
// (cmake/dependencies.cmake) defines the same CPPHTTPLIB_*_SUPPORT macros.
#include <httplib.h>

#include "api_request.h"
#include "api_response.h"
#include "llama.h"
#include "metrics.h"

namespace kvpool::serve {
namespace {

using json = nlohmann::json;
using httplib::DataSink;
using httplib::Request;
using httplib::Response;

constexpr const char* kJsonType = "application/json; charset=utf-8";
constexpr const char* kEventStreamType = "text/event-stream";  // never compressed by httplib
// How long Stop waits for cancelled responses to be written.
constexpr std::chrono::seconds kStopGrace{5};

// The routes, for 404 and 405 answers.
struct Route {
  const char* path;
  const char* method;
};
constexpr Route kRoutes[] = {
    {"/health", "GET"},
    {"/v1/models", "GET"},
    {"/models", "GET"},
    {"/metrics", "GET"},
    {"/slots", "GET"},
    {"/v1/chat/completions", "POST"},
    {"/chat/completions", "POST"},
    {"/v1/completions", "POST"},
    {"/completions", "POST"},
};

ApiError MakeError(int http_status, std::string message, std::string code = "",
                   std::string param = "") {
  ApiError e;
  e.http_status = http_status;
  e.message = std::move(message);
  e.type = http_status >= 500 ? "server_error" : "invalid_request_error";
  e.code = std::move(code);
  e.param = std::move(param);
  return e;
}

void SendJson(Response& res, int http_status, const json& body) {
  res.status = http_status;
  res.set_content(JsonText(body), kJsonType);
}

void SendError(Response& res, const ApiError& e) {
  if (e.http_status == 429) res.set_header("Retry-After", "1");
  if (e.http_status == 401) res.set_header("WWW-Authenticate", "Bearer");
  SendJson(res, e.http_status, ErrorBody(e));
}

// A generation that ended with kError: 503 when it was aborted (the server
// stopping: Stop cancels what is in flight), 500 otherwise.
ApiError GenerationError(const Status& error, bool server_stopping) {
  if (server_stopping) return MakeError(503, "the server is shutting down", "unavailable");
  if (error.code() == StatusCode::kAborted) return ErrorFromStatus(error);
  return MakeError(500, "generation failed: " + error.ToString());
}

std::string FileName(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// The 404 or 405 for a request no handler took.
ApiError NoRoute(const Request& req) {
  std::string allowed;
  for (const Route& r : kRoutes) {
    if (req.path == r.path) allowed = r.method;
  }
  if (allowed.empty()) {
    return MakeError(404, "no route " + req.method + " " + req.path +
                              " (routes: /v1/chat/completions, /v1/completions, /v1/models, "
                              "/health, /metrics, /slots)",
                     "not_found");
  }
  return MakeError(405, "method " + req.method + " is not allowed on " + req.path + " (use " +
                            allowed + ")",
                   "method_not_allowed");
}

bool IsChunked(const Request& req) {
  std::string te = req.get_header_value("Transfer-Encoding");
  std::transform(te.begin(), te.end(), te.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return te == "chunked";
}

// httplib reads a POST, PUT or PATCH body that has neither a Content-Length
// nor chunked encoding until the connection closes, without a size limit.
// HTTP/1.1 gives such a request no body; it is refused with 411 instead.
bool LacksBodyLength(const Request& req) {
  const bool has_body_method = req.method == "POST" || req.method == "PUT" || req.method == "PATCH";
  return has_body_method && !req.has_header("Content-Length") && !IsChunked(req);
}

// Reads the request body into *body, at most `limit` bytes (whatever its
// Content-Type; of a multipart body, its parts' contents one after the
// other); answers 413 or 400 itself and returns false when it cannot.
bool ReadBody(const Request& req, Response& res, const httplib::ContentReader& reader,
              size_t limit, std::string* body) {
  bool too_large = false;
  auto append = [&](const char* data, size_t n) {
    if (n > limit - body->size()) {
      too_large = true;
      return false;
    }
    body->append(data, n);
    return true;
  };
  const bool ok = req.is_multipart_form_data()
                      ? reader([](const httplib::MultipartFormData&) { return true; }, append)
                      : reader(append);
  if (ok) return true;
  if (too_large || res.status == 413) {
    res.status = -1;
    SendError(res, MakeError(413,
                             "request body is larger than the limit of " +
                                 std::to_string(limit) + " bytes",
                             "payload_too_large"));
  } else {
    SendError(res, MakeError(400, "could not read the request body (malformed chunked "
                                  "encoding, or the connection closed early)"));
  }
  return false;
}

// What one streaming response carries between calls of its content provider
// (all on the connection's worker thread).
struct SseState {
  std::shared_ptr<GenerationStream> stream;
  ResponseHeader header;
  const std::atomic<bool>* server_stopping = nullptr;
  bool role_sent = false;
  bool finished = false;  // the final event was taken from the stream
};

// Ends a generation whose client is gone: cancels it, then takes every
// event up to the final one so that the scheduler's last push is consumed.
void CancelAndDrain(SseState& s) {
  s.stream->Cancel();
  GenerationEvent ignored;
  while (s.stream->Next(&ignored)) {
  }
  s.finished = true;
}

// Writes `text`; on a failed write cancels the generation and returns false.
bool WriteOrCancel(SseState& s, DataSink& sink, const std::string& text) {
  if (sink.is_writable() && sink.write(text.data(), text.size())) return true;
  CancelAndDrain(s);
  return false;
}

// The text that ends a stream after the final event.
std::string FinalEvents(const SseState& s, const GenerationEvent& ev) {
  if (ev.kind == GenerationEvent::Kind::kError) {
    return SseEvent(ErrorBody(GenerationError(ev.error, s.server_stopping->load())));
  }
  std::string text = SseEvent(FinishChunk(s.header, ev.finish_reason, ev.timings));
  if (s.header.include_usage) text += SseEvent(UsageChunk(s.header, ev.timings));
  text += kSseDone;
  return text;
}

// One call of the chunked content provider: writes the next event. Returns
// false when the client is gone (the generation is then cancelled).
bool WriteNextEvent(SseState& s, DataSink& sink) {
  if (s.header.endpoint == Endpoint::kChat && !s.role_sent) {
    s.role_sent = true;
    return WriteOrCancel(s, sink, SseEvent(RoleChunk(s.header)));
  }
  GenerationEvent ev;
  if (!s.stream->Next(&ev)) {  // not reached: the final event ends the stream
    s.finished = true;
    sink.done();
    return true;
  }
  if (ev.kind == GenerationEvent::Kind::kText) {
    if (ev.text.empty()) return true;
    return WriteOrCancel(s, sink, SseEvent(ContentChunk(s.header, ev.text)));
  }
  s.finished = true;
  if (!WriteOrCancel(s, sink, FinalEvents(s, ev))) return false;
  sink.done();
  return true;
}

}  // namespace

class HttpServer::Impl {
 public:
  Impl(const ServeModel& model, Scheduler& scheduler, Pool* pool, HttpOptions options)
      : model_(model),
        scheduler_(scheduler),
        pool_(pool),
        options_(std::move(options)),
        model_file_(FileName(model.path())),
        n_vocab_(llama_vocab_n_tokens(llama_model_get_vocab(model.get()))),
        created_(std::chrono::duration_cast<std::chrono::seconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count()) {
    Configure();
    InstallRoutes();
  }

  Status Bind();
  int port() const { return port_; }
  Status Serve();
  void Stop();

 private:
  void Configure();
  void InstallRoutes();
  httplib::Server::HandlerResponse OnServerError(const Request& req, Response& res) const;

  // Request checks; each answers the error itself and returns false.
  bool Authorize(const Request& req, Response& res, std::string* tenant) const;
  bool CheckModel(const std::string& requested, Response& res) const;
  bool CheckTokenIds(const std::vector<int32_t>& tokens, Response& res) const;

  // A POST route: reads the body (bounded), then `handle(req, body, res)`.
  using BodyHandler = void (Impl::*)(const Request&, const std::string&, Response&);
  httplib::Server::HandlerWithContentReader WithBody(BodyHandler handle);
  void HandleChat(const Request& req, const std::string& body, Response& res);
  void HandleCompletion(const Request& req, const std::string& body, Response& res);
  // Submits `prompt` and answers with the whole result or a stream.
  void Generate(Endpoint endpoint, const RequestParams& params, std::vector<int32_t> prompt,
                std::string tenant, Response& res);
  void Collect(const std::shared_ptr<GenerationStream>& stream, const ResponseHeader& header,
               Response& res);
  void StartStream(std::shared_ptr<GenerationStream> stream, ResponseHeader header,
                   Response& res);

  // Generations in flight, so that Stop can cancel them.
  void Track(const std::shared_ptr<GenerationStream>& stream);
  void Untrack(const std::shared_ptr<GenerationStream>& stream);

  const ServeModel& model_;
  Scheduler& scheduler_;
  Pool* const pool_;
  const HttpOptions options_;
  const std::string model_file_;
  const int32_t n_vocab_;
  const int64_t created_;
  httplib::Server server_;
  int port_ = 0;
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> serving_{false};
  std::mutex streams_mu_;
  std::condition_variable streams_done_;  // streams_ became empty
  std::set<std::shared_ptr<GenerationStream>> streams_;
};

// ---------------------------------------------------------------------------
// Set-up

void HttpServer::Impl::Configure() {
  const size_t threads = static_cast<size_t>(std::max(1, options_.http_threads));
  server_.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server_.set_payload_max_length(options_.max_body_bytes);
  server_.set_read_timeout(options_.read_timeout_s, 0);
  server_.set_write_timeout(options_.read_timeout_s, 0);
  server_.set_tcp_nodelay(true);  // SSE events are small: send each at once
  server_.set_keep_alive_max_count(1000);
  // SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, which would let
  // a second server bind the same port and silently share its connections.
  server_.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  server_.set_error_handler(httplib::Server::HandlerWithResponse(
      [this](const Request& req, Response& res) { return OnServerError(req, res); }));
  server_.set_exception_handler([](const Request&, Response& res, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    SendError(res, MakeError(500, "internal error: " + what));
  });
  server_.set_pre_routing_handler([](const Request& req, Response& res) {
    if (!LacksBodyLength(req)) return httplib::Server::HandlerResponse::Unhandled;
    SendError(res, MakeError(411, req.method + " " + req.path +
                                      ": the request needs a Content-Length header (or chunked "
                                      "Transfer-Encoding)",
                             "length_required"));
    return httplib::Server::HandlerResponse::Handled;
  });
}

void HttpServer::Impl::InstallRoutes() {
  server_.Get("/health", [](const Request&, Response& res) {
    SendJson(res, 200, {{"status", "ok"}});
  });
  auto models = [this](const Request& req, Response& res) {
    std::string tenant;
    if (Authorize(req, res, &tenant)) SendJson(res, 200, ModelsBody(model_.id(), created_));
  };
  server_.Get("/v1/models", models);
  server_.Get("/models", models);
  server_.Get("/metrics", [this](const Request& req, Response& res) {
    std::string tenant;
    if (!Authorize(req, res, &tenant)) return;
    std::optional<PoolStats> pool;
    if (pool_ != nullptr) pool = pool_->Stats();
    res.set_content(PrometheusText(scheduler_.Stats(), pool ? &*pool : nullptr),
                    kPrometheusContentType);
  });
  server_.Get("/slots", [this](const Request& req, Response& res) {
    std::string tenant;
    if (Authorize(req, res, &tenant)) SendJson(res, 200, SlotsBody(scheduler_.Slots()));
  });
  server_.Post("/v1/chat/completions", WithBody(&Impl::HandleChat));
  server_.Post("/chat/completions", WithBody(&Impl::HandleChat));
  server_.Post("/v1/completions", WithBody(&Impl::HandleCompletion));
  server_.Post("/completions", WithBody(&Impl::HandleCompletion));
  // Everything else: 404, or 405 on a known path (a body is read first, so
  // that the connection stays usable).
  auto no_route = [](const Request& req, Response& res) { SendError(res, NoRoute(req)); };
  auto no_route_with_body = [this](const Request& req, Response& res,
                                   const httplib::ContentReader& reader) {
    std::string ignored;
    if (ReadBody(req, res, reader, options_.max_body_bytes, &ignored)) {
      SendError(res, NoRoute(req));
    }
  };
  server_.Get(".*", no_route);
  server_.Post(".*", no_route_with_body);
  server_.Put(".*", no_route_with_body);
  server_.Patch(".*", no_route_with_body);
  server_.Delete(".*", no_route_with_body);
  server_.Options(".*", no_route);
}

// Errors httplib answers itself (malformed request, body over the limit,
// URI too long): the OpenAI error body. Our own errors already have one.
httplib::Server::HandlerResponse HttpServer::Impl::OnServerError(const Request& req,
                                                                Response& res) const {
  if (!res.body.empty() || res.content_provider_) return httplib::Server::HandlerResponse::Unhandled;
  std::string message;
  std::string code;
  switch (res.status) {
    case 413:
      message = "request body is larger than the limit of " +
                std::to_string(options_.max_body_bytes) + " bytes";
      code = "payload_too_large";
      break;
    case 414: message = "request URI is longer than the limit of 8192 bytes"; break;
    case 404:
    case 405: SendError(res, NoRoute(req)); return httplib::Server::HandlerResponse::Handled;
    case 400:
      message = "malformed HTTP request, or method \"" + req.method + "\" is not supported";
      break;
    default: message = "HTTP error " + std::to_string(res.status); break;
  }
  SendError(res, MakeError(res.status, std::move(message), std::move(code)));
  return httplib::Server::HandlerResponse::Handled;
}

// ---------------------------------------------------------------------------
// Checks

bool HttpServer::Impl::Authorize(const Request& req, Response& res, std::string* tenant) const {
  if (options_.api_keys.empty()) {
    tenant->clear();
    return true;
  }
  const std::string header = req.get_header_value("Authorization");
  const std::string_view key = BearerToken(header);
  bool found = false;
  for (const std::string& k : options_.api_keys) {  // no early exit: constant time
    if (ConstantTimeEquals(k, key)) {
      found = true;
      *tenant = k;
    }
  }
  if (found) return true;
  SendError(res, MakeError(401,
                           header.empty() ? "missing API key: send \"Authorization: Bearer <key>\""
                                          : "invalid API key in the Authorization header",
                           "invalid_api_key"));
  return false;
}

bool HttpServer::Impl::CheckModel(const std::string& requested, Response& res) const {
  if (requested == model_.id() || requested == model_file_) return true;
  SendError(res, MakeError(404,
                           "model \"" + requested + "\" not found: this server serves \"" +
                               model_.id() + "\"",
                           "model_not_found", "model"));
  return false;
}

bool HttpServer::Impl::CheckTokenIds(const std::vector<int32_t>& tokens, Response& res) const {
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] >= 0 && tokens[i] < n_vocab_) continue;
    const std::string param = "prompt[" + std::to_string(i) + "]";
    SendError(res, MakeError(400,
                             param + ": token id " + std::to_string(tokens[i]) +
                                 " is outside the vocabulary [0, " + std::to_string(n_vocab_) + ")",
                             "", param));
    return false;
  }
  return true;
}

// ---------------------------------------------------------------------------
// Completions

httplib::Server::HandlerWithContentReader HttpServer::Impl::WithBody(BodyHandler handle) {
  return [this, handle](const Request& req, Response& res, const httplib::ContentReader& reader) {
    std::string body;
    if (ReadBody(req, res, reader, options_.max_body_bytes, &body)) (this->*handle)(req, body, res);
  };
}

void HttpServer::Impl::HandleChat(const Request& req, const std::string& body, Response& res) {
  std::string tenant;
  if (!Authorize(req, res, &tenant)) return;
  ApiError error;
  Result<ChatCompletionRequest> parsed = ParseChatCompletionRequest(body, &error);
  if (!parsed.ok()) return SendError(res, error);
  if (!CheckModel(parsed->params.model, res)) return;
  Result<std::string> text = model_.ApplyChatTemplate(parsed->messages);
  if (!text.ok()) {
    return SendError(res, MakeError(400, "messages: " + text.status().message(), "", "messages"));
  }
  Generate(Endpoint::kChat, parsed->params, model_.Tokenize(*text, /*add_special=*/true),
           std::move(tenant), res);
}

void HttpServer::Impl::HandleCompletion(const Request& req, const std::string& body,
                                        Response& res) {
  std::string tenant;
  if (!Authorize(req, res, &tenant)) return;
  ApiError error;
  Result<CompletionRequest> parsed = ParseCompletionRequest(body, &error);
  if (!parsed.ok()) return SendError(res, error);
  if (!CheckModel(parsed->params.model, res)) return;
  std::vector<int32_t> prompt;
  if (const auto* text = std::get_if<std::string>(&parsed->prompt)) {
    prompt = model_.Tokenize(*text, /*add_special=*/true);
  } else {
    prompt = std::move(std::get<std::vector<int32_t>>(parsed->prompt));
    if (!CheckTokenIds(prompt, res)) return;
  }
  Generate(Endpoint::kCompletion, parsed->params, std::move(prompt), std::move(tenant), res);
}

void HttpServer::Impl::Generate(Endpoint endpoint, const RequestParams& params,
                                std::vector<int32_t> prompt, std::string tenant, Response& res) {
  const std::string param = endpoint == Endpoint::kChat ? "messages" : "prompt";
  if (prompt.empty()) {
    return SendError(res, MakeError(400, param + ": tokenizes to no tokens", "", param));
  }
  const size_t context = scheduler_.slot_context();
  if (prompt.size() + 1 > context) {
    return SendError(res, MakeError(413,
                                    param + ": the prompt is " + std::to_string(prompt.size()) +
                                        " tokens; with one token to generate it needs " +
                                        std::to_string(prompt.size() + 1) +
                                        ", more than a slot's context of " +
                                        std::to_string(context) + " tokens",
                                    "context_length_exceeded", param));
  }
  GenerationRequest request;
  request.tenant = std::move(tenant);
  request.prompt = std::move(prompt);
  request.sampling = params.sampling;
  request.max_tokens = params.max_tokens;
  request.stop = params.stop;
  Result<std::shared_ptr<GenerationStream>> stream = scheduler_.Submit(std::move(request));
  if (!stream.ok()) return SendError(res, ErrorFromStatus(stream.status()));
  Track(*stream);
  ResponseHeader header = NewResponseHeader(endpoint, model_.id(), params.include_usage);
  if (params.stream) return StartStream(std::move(*stream), std::move(header), res);
  Collect(*stream, header, res);
  Untrack(*stream);
}

void HttpServer::Impl::Collect(const std::shared_ptr<GenerationStream>& stream,
                               const ResponseHeader& header, Response& res) {
  std::string text;
  GenerationEvent ev;
  while (stream->Next(&ev)) {
    if (ev.kind == GenerationEvent::Kind::kText) {
      text += ev.text;
    } else if (ev.kind == GenerationEvent::Kind::kDone) {
      SendJson(res, 200, CompletionBody(header, text, ev.finish_reason, ev.timings));
    } else {
      SendError(res, GenerationError(ev.error, stop_requested_.load()));
    }
  }
}

void HttpServer::Impl::StartStream(std::shared_ptr<GenerationStream> stream,
                                   ResponseHeader header, Response& res) {
  auto state = std::make_shared<SseState>();
  state->stream = std::move(stream);
  state->header = std::move(header);
  state->server_stopping = &stop_requested_;
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      kEventStreamType,
      [state](size_t /*offset*/, DataSink& sink) { return WriteNextEvent(*state, sink); },
      // Runs when the response is destroyed, however it ended (written,
      // client gone before the first event, server stopping).
      [this, state](bool /*success*/) {
        if (!state->finished) CancelAndDrain(*state);
        Untrack(state->stream);
      });
}

// ---------------------------------------------------------------------------
// Lifecycle

void HttpServer::Impl::Track(const std::shared_ptr<GenerationStream>& stream) {
  std::lock_guard<std::mutex> lock(streams_mu_);
  streams_.insert(stream);
  if (stop_requested_.load()) stream->Cancel();
}

void HttpServer::Impl::Untrack(const std::shared_ptr<GenerationStream>& stream) {
  std::lock_guard<std::mutex> lock(streams_mu_);
  streams_.erase(stream);
  if (streams_.empty()) streams_done_.notify_all();
}

Status HttpServer::Impl::Bind() {
  errno = 0;
  const int bound = options_.port == 0
                        ? server_.bind_to_any_port(options_.host)
                        : (server_.bind_to_port(options_.host, options_.port) ? options_.port : -1);
  if (bound <= 0) {
    const std::string reason =
        errno != 0 ? std::generic_category().message(errno)
                   : "the host does not resolve to an address that can be bound";
    return Status::IOError("cannot listen on " + options_.host + ":" +
                           std::to_string(options_.port) + ": " + reason);
  }
  port_ = bound;
  return Status::OK();
}

Status HttpServer::Impl::Serve() {
  serving_.store(true);
  if (stop_requested_.load()) {
    serving_.store(false);
    return Status::OK();
  }
  const bool ok = server_.listen_after_bind();
  serving_.store(false);
  if (!ok && !stop_requested_.load()) {
    return Status::IOError("serving on " + options_.host + ":" + std::to_string(port_) +
                           " failed");
  }
  return Status::OK();
}

void HttpServer::Impl::Stop() {
  stop_requested_.store(true);
  {
    // Cancelled generations end with an error event (a 503) at the
    // scheduler's next step; httplib writes nothing more once stopped, so
    // give their responses a moment to be written first.
    std::unique_lock<std::mutex> lock(streams_mu_);
    for (const auto& stream : streams_) stream->Cancel();
    streams_done_.wait_for(lock, kStopGrace, [this] { return streams_.empty(); });
  }
  // Serve may be between its check of stop_requested_ and httplib's accept
  // loop, where httplib's stop() would do nothing: wait for either end.
  while (serving_.load() && !server_.is_running()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  server_.stop();
}

// ---------------------------------------------------------------------------

HttpServer::HttpServer(const ServeModel& model, Scheduler& scheduler, Pool* pool,
                       HttpOptions options)
    : impl_(std::make_unique<Impl>(model, scheduler, pool, std::move(options))) {}

HttpServer::~HttpServer() { Stop(); }

Status HttpServer::Bind() { return impl_->Bind(); }
int HttpServer::port() const { return impl_->port(); }
Status HttpServer::Serve() { return impl_->Serve(); }
void HttpServer::Stop() { impl_->Stop(); }

}  // namespace kvpool::serve
