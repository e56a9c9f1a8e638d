#include "client/daemon_connection.h"

#include <sys/socket.h>

#include <vector>

namespace kvpool::client {
namespace {

Status ReplyStatus(const ipc::Reply& r) {
  if (r.code == StatusCode::kOk) return Status::OK();
  return Status(r.code, r.text);
}

}  // namespace

Result<std::shared_ptr<DaemonConnection>> DaemonConnection::Open(const std::string& path,
                                                                 const std::string& tenant,
                                                                 const ipc::SharedRegion* region,
                                                                 int timeout_ms, ipc::HelloOk* hello) {
  const std::string where = "kvpoold at '" + path + "'";
  KVP_ASSIGN_OR_RETURN(ipc::Fd sock, ipc::ConnectUnix(path, timeout_ms));
  ipc::Hello h{tenant, region ? region->size() : 0};
  std::vector<std::byte> frame = ipc::Frame(ipc::MsgType::kHello, 0, ipc::EncodeHello(h));
  KVP_RETURN_IF_ERROR(ipc::SendAll(sock.get(), frame, region ? region->fd() : -1, timeout_ms).WithContext(where));
  auto answer = ipc::ReceiveFrame(sock.get(), timeout_ms);
  if (!answer.ok()) return Status::IOError(where + " did not answer the hello: " + answer.status().ToString());
  if (answer->header.type == ipc::MsgType::kReply) {
    KVP_ASSIGN_OR_RETURN(ipc::Reply refusal, ipc::DecodeReply(answer->body));
    Status s = ReplyStatus(refusal);
    if (s.ok()) s = Status::IOError("an empty reply to the hello");
    return s.WithContext(where);
  }
  if (answer->header.type != ipc::MsgType::kHelloOk) return Status::IOError(where + " answered the hello with a wrong frame");
  auto ok = ipc::DecodeHelloOk(answer->body);
  if (!ok.ok()) return ok.status().WithContext(where);
  *hello = std::move(*ok);
  std::shared_ptr<DaemonConnection> c(new DaemonConnection(std::move(sock), path, timeout_ms));
  c->receiver_ = std::thread([raw = c.get()] { raw->ReceiveLoop(); });
  return c;
}

DaemonConnection::DaemonConnection(ipc::Fd sock, std::string path, int timeout_ms)
    : sock_(std::move(sock)), path_(std::move(path)), timeout_ms_(timeout_ms) {}

DaemonConnection::~DaemonConnection() {
  Break(Status::Aborted("the client closed the connection"));
  if (!receiver_.joinable()) return;
  if (receiver_.get_id() == std::this_thread::get_id()) {
    receiver_.detach();  // the last reference went away inside a callback
  } else {
    receiver_.join();
  }
}

Result<std::shared_ptr<PendingCall>> DaemonConnection::Start(ipc::MsgType type, std::span<const std::byte> body,
                                                             std::function<void(const ipc::LayerReady&)> on_layer,
                                                             std::shared_ptr<void> hold) {
  auto call = std::make_shared<PendingCall>();
  call->on_layer = std::move(on_layer);
  call->hold = std::move(hold);
  call->progress = call->sent;
  uint64_t id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (broken_.load()) return broken_why_;
    id = next_id_++;
    pending_[id] = call;
  }
  std::vector<std::byte> frame = ipc::Frame(type, id, body);
  Status sent;
  {
    std::lock_guard<std::mutex> lock(send_mu_);
    sent = ipc::SendAll(sock_.get(), frame, -1, timeout_ms_);
  }
  if (!sent.ok()) {
    Break(Status::IOError("kvpoold at '" + path_ + "': " + sent.ToString()));
    Find(id, /*erase=*/true);
    return Status::IOError("kvpoold at '" + path_ + "': " + sent.ToString());
  }
  return call;
}

Result<ipc::Reply> DaemonConnection::Wait(PendingCall& call) {
  std::unique_lock<std::mutex> lock(call.mu);
  const auto timeout = std::chrono::milliseconds(timeout_ms_);
  while (!call.done) {
    auto deadline = call.progress + timeout;
    if (call.cv.wait_until(lock, deadline) == std::cv_status::timeout && !call.done &&
        SteadyClock::now() >= call.progress + timeout) {
      lock.unlock();
      timed_out_.store(true);
      Break(Status::IOError("kvpoold at '" + path_ + "' did not answer within " + std::to_string(timeout_ms_) + " ms"));
      lock.lock();
    }
  }
  if (!call.failure.ok()) return call.failure;
  return call.reply;
}

Result<ipc::Reply> DaemonConnection::Call(ipc::MsgType type, std::span<const std::byte> body) {
  KVP_ASSIGN_OR_RETURN(auto call, Start(type, body));
  KVP_ASSIGN_OR_RETURN(ipc::Reply reply, Wait(*call));
  Status s = ReplyStatus(reply);
  if (!s.ok()) return s;
  return reply;
}

void DaemonConnection::Break(const Status& why) {
  std::unordered_map<uint64_t, std::shared_ptr<PendingCall>> failed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!broken_.exchange(true)) broken_why_ = why;
    failed.swap(pending_);
  }
  shutdown(sock_.get(), SHUT_RDWR);  // wakes the receiver
  for (auto& [id, call] : failed) {
    {
      std::lock_guard<std::mutex> lock(call->mu);
      call->failure = why;
      call->done = true;
      call->hold.reset();
    }
    call->cv.notify_all();
  }
}

std::shared_ptr<PendingCall> DaemonConnection::Find(uint64_t id, bool erase) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = pending_.find(id);
  if (it == pending_.end()) return nullptr;
  std::shared_ptr<PendingCall> call = it->second;
  if (erase) pending_.erase(it);
  return call;
}

void DaemonConnection::Deliver(ipc::ReceivedFrame& frame) {
  const bool is_reply = frame.header.type == ipc::MsgType::kReply;
  std::shared_ptr<PendingCall> call = Find(frame.header.request_id, /*erase=*/is_reply);
  if (!call) return;  // a call already failed by a break
  if (frame.header.type == ipc::MsgType::kLayerReady) {
    auto event = ipc::DecodeLayerReady(frame.body);
    if (!event.ok()) return Break(event.status().WithContext("kvpoold sent a bad layer event"));
    if (call->on_layer) call->on_layer(*event);
    std::lock_guard<std::mutex> lock(call->mu);
    call->progress = SteadyClock::now();
    return;
  }
  if (!is_reply) return Break(Status::IOError("kvpoold sent an unexpected frame type"));
  auto reply = ipc::DecodeReply(frame.body);
  {
    std::lock_guard<std::mutex> lock(call->mu);
    call->progress = SteadyClock::now();
    if (reply.ok()) {
      call->reply = std::move(*reply);
    } else {
      call->failure = reply.status().WithContext("kvpoold sent a bad reply");
    }
    call->done = true;
    call->hold.reset();
  }
  call->cv.notify_all();
}

void DaemonConnection::ReceiveLoop() {
  while (!broken_.load()) {
    auto frame = ipc::ReceiveFrame(sock_.get(), -1);
    if (!frame.ok()) {
      Break(Status::IOError("kvpoold at '" + path_ + "': " + frame.status().ToString()));
      return;
    }
    Deliver(*frame);
  }
}

}  // namespace kvpool::client
