#include "client/client_requests.h"

#include <cstring>

namespace kvpool::client {

bool IsDeviceError(StatusCode code) { return code == StatusCode::kIOError || code == StatusCode::kCorruption; }

ipc::RegionSpan Staging::Span(std::span<const ChunkKey> keys) const {
  ipc::RegionSpan span;
  span.keys.assign(keys.begin(), keys.begin() + static_cast<std::ptrdiff_t>(first + chunks));
  span.first_chunk = first;
  span.chunk_stride = seg;
  for (uint32_t l = 0; l < layers; ++l) span.layer_offset.push_back(lease->offset + uint64_t{l} * chunks * seg);
  return span;
}

void Staging::CopyIn(const ConstKvBuffer& source) const {
  for (uint32_t l = 0; l < layers; ++l) {
    for (size_t c = first; c < first + chunks; ++c) std::memcpy(Segment(c, l), source.Segment(c, l), payload);
  }
}

void Staging::CopyOutLayer(const KvBuffer& destination, uint32_t layer, size_t end) const {
  for (size_t c = first; c < end && c < first + chunks; ++c) {
    std::memcpy(destination.Segment(c, layer), Segment(c, layer), payload);
  }
}

ClientRetrieve::ClientRetrieve(std::shared_ptr<DaemonConnection> conn, size_t first, uint32_t layers,
                               std::shared_ptr<StagedCopy> staged)
    : conn_(std::move(conn)), first_(first), layers_(layers), staged_(std::move(staged)) {}

std::shared_ptr<ClientRetrieve> ClientRetrieve::Finished(size_t value, Status error) {
  std::shared_ptr<ClientRetrieve> r(new ClientRetrieve());
  r->resolved_ = true;
  r->value_ = value;
  r->error_ = std::move(error);
  return r;
}

void ClientRetrieve::Resolve(const std::shared_ptr<DaemonConnection>& conn, PendingCall& call) {
  Result<ipc::Reply> reply = conn->Wait(call);
  std::lock_guard<std::mutex> lock(mu_);
  if (resolved_) return;  // another Wait got there first
  resolved_ = true;
  {
    std::lock_guard<std::mutex> call_lock(call.mu);
    elapsed_ = std::chrono::duration<double>(call.progress - call.sent).count();
  }
  if (!reply.ok()) {  // the daemon is gone: a miss, like a failed device
    value_ = first_;
    error_ = reply.status();
  } else if (reply->code == StatusCode::kOk || IsDeviceError(reply->code)) {
    value_ = static_cast<size_t>(reply->value);
    if (reply->code != StatusCode::kOk) error_ = Status(reply->code, reply->text);
  } else {
    failure_ = Status(reply->code, reply->text);
  }
  if (staged_ && failure_.ok()) {
    std::lock_guard<std::mutex> copy_lock(staged_->mu);
    for (uint32_t l = 0; l < layers_; ++l) {
      if (!staged_->copied[l]) staged_->staging.CopyOutLayer(staged_->destination, l, value_);
    }
  }
  staged_.reset();  // the staging may be reused from here on
  call_.reset();
  conn_.reset();
}

Result<size_t> ClientRetrieve::Wait() {
  std::shared_ptr<DaemonConnection> conn;
  std::shared_ptr<PendingCall> call;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!resolved_) {
      if (!call_) return Status::InvalidArgument("Wait on a retrieval that was never sent");
      conn = conn_;
      call = call_;
    }
  }
  if (call) Resolve(conn, *call);
  std::lock_guard<std::mutex> lock(mu_);
  if (!failure_.ok()) return failure_;
  return value_;
}

bool ClientRetrieve::Done() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (resolved_) return true;
  std::lock_guard<std::mutex> call_lock(call_->mu);
  return call_->done;
}

double ClientRetrieve::ElapsedSeconds() const {
  std::lock_guard<std::mutex> lock(mu_);
  return elapsed_;
}

Status ClientRetrieve::error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return error_;
}

std::shared_ptr<ClientOffload> ClientOffload::Finished(Result<size_t> result) {
  auto o = std::make_shared<ClientOffload>(nullptr, nullptr);
  o->resolved_ = true;
  o->result_ = std::move(result);
  return o;
}

Result<size_t> ClientOffload::Wait() {
  std::shared_ptr<DaemonConnection> conn;
  std::shared_ptr<PendingCall> call;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (resolved_) return result_;
    conn = conn_;
    call = call_;
  }
  Result<ipc::Reply> reply = conn->Wait(*call);
  std::lock_guard<std::mutex> lock(mu_);
  if (resolved_) return result_;
  if (!reply.ok()) {
    result_ = reply.status();
  } else if (reply->code != StatusCode::kOk) {
    result_ = Status(reply->code, reply->text);
  } else {
    result_ = static_cast<size_t>(reply->value);
  }
  resolved_ = true;
  call_.reset();
  conn_.reset();
  return result_;
}

bool ClientOffload::Done() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (resolved_) return true;
  std::lock_guard<std::mutex> call_lock(call_->mu);
  return call_->done;
}

}  // namespace kvpool::client
