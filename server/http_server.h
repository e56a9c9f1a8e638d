// The HTTP front end of kvpool serve (cpp-httplib): OpenAI-compatible
// routes over one model and its batching scheduler.
//
//   GET  /health                                  {"status": "ok"} (no key needed)
//   GET  /v1/models, /models                      the one model
//   POST /v1/chat/completions, /chat/completions  chat, streaming or not
//   POST /v1/completions, /completions            raw prompt (text or token ids)
//   GET  /metrics                                 Prometheus text (metrics.h)
//   GET  /slots                                   the scheduler's slots
//
// With API keys, every route but /health needs "Authorization: Bearer
// <key>"; the key is the request's tenant, so each key has its own cache
// namespace. Every error, the server's own included (unknown route 404,
// wrong method 405, body too large 413), has the OpenAI error body and
// names the problem.
//
// Thread-safety: Stop may be called from any thread (a signal handler's
// thread, typically) while Serve runs; the rest from one thread.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include <kvpool/pool.h>
#include <kvpool/status.h>

#include "model.h"
#include "scheduler.h"

namespace kvpool::serve {

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port (see HttpServer::port)
  std::vector<std::string> api_keys;  // empty: no authentication, tenant ""
  // Worker threads; each request holds one until its response is written,
  // so this bounds the requests in flight (queued ones included).
  int http_threads = 8;
  size_t max_body_bytes = size_t{16} << 20;  // larger request bodies: 413
  int read_timeout_s = 600;                  // and write timeout, per socket operation
};

class HttpServer {
 public:
  // `model` and `scheduler` (and `pool`, which may be null) must outlive
  // the server.
  HttpServer(const ServeModel& model, Scheduler& scheduler, Pool* pool, HttpOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Opens the listening socket. Errors: IOError "cannot listen on
  // <host>:<port>: <reason>".
  Status Bind();
  // The bound port (the chosen one when options.port was 0); 0 before Bind.
  int port() const;

  // Serves until Stop. REQUIRES: Bind() succeeded. Returns OK after Stop;
  // IOError when the socket fails otherwise.
  Status Serve();
  // Cancels the generations in flight, waits up to 5 s for their responses
  // (a streaming client gets an error event, a waiting one a 503 "the server
  // is shutting down"), then stops accepting connections; Serve returns once
  // httplib's workers are done. Idempotent; before Serve, Serve then
  // returns at once.
  void Stop();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvpool::serve
