#include "session.h"

#include <sys/socket.h>

#include "daemon.h"
#include "util/log.h"

namespace kvpool::daemon {
namespace {

constexpr int kHelloTimeoutMs = 5000;
constexpr size_t kMaxOutbox = 1 << 16;  // frames queued for a client that does not read
constexpr int kSendTimeoutMs = 10000;   // a client that takes no bytes this long is dropped

ipc::Reply Refusal(const Status& s) { return ipc::Reply{s.code(), 0, s.message()}; }

}  // namespace

Session::Session(Daemon& daemon, ipc::Fd sock, ipc::PeerCred peer, uint64_t id)
    : daemon_(daemon), sock_(std::move(sock)), peer_(peer), id_(id) {}

Session::~Session() { Join(); }

void Session::Start() {
  reader_ = std::thread([this] { ReadLoop(); });
}

void Session::Shutdown() { shutdown(sock_.get(), SHUT_RD); }

void Session::Join() {
  if (reader_.joinable()) reader_.join();
}

Status Session::Hello() {
  auto frame = ipc::ReceiveFrame(sock_.get(), kHelloTimeoutMs);
  if (!frame.ok()) return frame.status();
  if (frame->header.type != ipc::MsgType::kHello) return Status::InvalidArgument("the first message must be a hello");
  KVP_ASSIGN_OR_RETURN(ipc::Hello hello, ipc::DecodeHello(frame->body));
  const DaemonOptions& o = daemon_.options();
  if (hello.tenant.empty()) {  // an admin connection: stats only
    if (!daemon_.IsAdmin(peer_)) {
      return Status::InvalidArgument("uid " + std::to_string(peer_.uid) + " may not open an admin connection");
    }
    admin_ = true;
  } else {
    KVP_ASSIGN_OR_RETURN(tenant_, daemon_.tenants().Authorize(hello.tenant, peer_));
    admin_ = daemon_.IsAdmin(peer_);
  }
  if (hello.region_bytes > o.max_region_bytes) {
    return Status::InvalidArgument("hello.region_bytes " + std::to_string(hello.region_bytes) +
                                   " is over daemon.max_region (" + std::to_string(o.max_region_bytes) + ")");
  }
  if (hello.region_bytes > 0) {
    if (frame->fds.size() != 1) return Status::InvalidArgument("the hello must carry exactly one memfd");
    KVP_ASSIGN_OR_RETURN(region_, ipc::SharedRegion::Map(std::move(frame->fds[0]), hello.region_bytes));
  }
  ipc::HelloOk ok{daemon_.pool().options().shape, id_, o.max_region_bytes};
  return ipc::SendAll(sock_.get(), ipc::Frame(ipc::MsgType::kHelloOk, 0, ipc::EncodeHelloOk(ok)), -1, kHelloTimeoutMs);
}

void Session::ReadLoop() {
  Status hello = Hello();
  if (!hello.ok()) {
    log::Info("kvpoold: client pid " + std::to_string(peer_.pid) + " uid " + std::to_string(peer_.uid) +
              " refused: " + hello.ToString());
    std::vector<std::byte> refusal = ipc::Frame(ipc::MsgType::kReply, 0, ipc::EncodeReply(Refusal(hello)));
    (void)ipc::SendAll(sock_.get(), refusal, -1, kHelloTimeoutMs);
    finished_.store(true);
    return;
  }
  if (tenant_) {
    tenant_->counters().clients.fetch_add(1);
    tenant_->counters().connects.fetch_add(1);
  }
  writer_ = std::thread([this] { WriteLoop(); });
  completer_ = std::thread([this] { CompleteLoop(); });
  for (;;) {
    auto frame = ipc::ReceiveFrame(sock_.get(), -1);
    if (!frame.ok()) break;  // closed, killed, shut down or a broken frame: stop reading
    Dispatch(*frame);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    reading_done_ = true;
  }
  cv_.notify_all();
  completer_.join();  // every accepted request has completed
  writer_.join();     // and its reply was sent, or the client is gone
  if (tenant_) tenant_->counters().clients.fetch_sub(1);
  region_.reset();
  finished_.store(true);
}

void Session::Dispatch(ipc::ReceivedFrame& frame) {
  Status s;
  switch (frame.header.type) {
    case ipc::MsgType::kLookup: s = OnLookup(frame); break;
    case ipc::MsgType::kFindChild: s = OnFindChild(frame); break;
    case ipc::MsgType::kRetrieve: s = OnRetrieve(frame); break;
    case ipc::MsgType::kOffload: s = OnOffload(frame); break;
    case ipc::MsgType::kRemove: s = OnRemove(frame); break;
    case ipc::MsgType::kFlush: s = OnFlush(frame); break;
    case ipc::MsgType::kStats: s = OnStats(frame); break;
    default: s = Status::InvalidArgument("a client may not send message type " +
                                         std::to_string(static_cast<int>(frame.header.type)));
  }
  if (s.ok()) return;
  if (tenant_) tenant_->counters().bad_requests.fetch_add(1, std::memory_order_relaxed);
  Reply(frame.header.request_id, Refusal(s));
}

Status Session::OnLookup(const ipc::ReceivedFrame& f) {
  if (!tenant_) return Status::InvalidArgument("an admin connection has no tenant to look up");
  KVP_ASSIGN_OR_RETURN(ipc::KeyList m, ipc::DecodeKeyList(f.body));
  std::vector<ChunkKey> keys = tenant_->PoolKeys(m.keys);
  size_t n = daemon_.pool().Lookup(keys);
  tenant_->counters().lookups.fetch_add(1, std::memory_order_relaxed);
  tenant_->counters().hit_chunks.fetch_add(n, std::memory_order_relaxed);
  tenant_->Touch(std::span<const ChunkKey>(keys).first(n));
  Reply(f.header.request_id, ipc::Reply{StatusCode::kOk, n, {}});
  return Status::OK();
}

Status Session::OnFindChild(const ipc::ReceivedFrame& f) {
  if (!tenant_) return Status::InvalidArgument("an admin connection has no tenant to look up");
  KVP_ASSIGN_OR_RETURN(ipc::FindChildKeys m, ipc::DecodeFindChild(f.body));
  const std::vector<ChunkKey> prefix = tenant_->PoolKeys(m.prefix);
  const std::vector<ChunkKey> candidates = tenant_->PoolKeys(m.candidates);
  const size_t i = daemon_.pool().FindChild(prefix, candidates);
  tenant_->counters().lookups.fetch_add(1, std::memory_order_relaxed);
  if (i < candidates.size()) {
    tenant_->counters().hit_chunks.fetch_add(1, std::memory_order_relaxed);
    tenant_->Touch(std::span<const ChunkKey>(candidates).subspan(i, 1));
  }
  Reply(f.header.request_id, ipc::Reply{StatusCode::kOk, i, {}});
  return Status::OK();
}

Status Session::CheckSpan(const ipc::RegionSpan& span) const {
  if (!tenant_) return Status::InvalidArgument("an admin connection cannot move data");
  if (!region_) return Status::InvalidArgument("this connection registered no shared region");
  const ModelShape& shape = daemon_.pool().options().shape;
  return ipc::CheckSpanInRegion(span, shape.layers, shape.SegmentPayloadBytes(), region_->size());
}

template <typename Byte>
KvBufferT<Byte> Session::BufferOf(const ipc::RegionSpan& span) const {
  KvBufferT<Byte> b;
  b.chunk_stride = static_cast<size_t>(span.chunk_stride);
  b.first_chunk = static_cast<size_t>(span.first_chunk);
  for (uint64_t off : span.layer_offset) b.layer_base.push_back(region_->data() + off);
  return b;
}

Status Session::OnRetrieve(const ipc::ReceivedFrame& f) {
  KVP_ASSIGN_OR_RETURN(ipc::Retrieve m, ipc::DecodeRetrieve(f.body));
  KVP_RETURN_IF_ERROR(CheckSpan(m.span));
  InFlight op = NewOp(f, m.span);
  LayerReadyFn events;
  if (m.layer_events) {
    const uint64_t id = op.request_id;
    events = [this, id](uint32_t layer, size_t valid) {
      Send(ipc::Frame(ipc::MsgType::kLayerReady, id, ipc::EncodeLayerReady({layer, valid})));
    };
  }
  AcquireSlot();
  auto handle = daemon_.pool().Retrieve(op.pool_keys, BufferOf<std::byte>(m.span), std::move(events));
  if (!handle.ok()) {
    ReleaseSlot();
    return handle.status();
  }
  op.handle = std::move(*handle);
  Track(std::move(op));
  return Status::OK();
}

Session::InFlight Session::NewOp(const ipc::ReceivedFrame& f, const ipc::RegionSpan& span) const {
  const ModelShape& shape = daemon_.pool().options().shape;
  InFlight op;
  op.request_id = f.header.request_id;
  op.pool_keys = tenant_->PoolKeys(span.keys);
  op.first = static_cast<size_t>(span.first_chunk);
  op.bytes_per_chunk = uint64_t{shape.layers} * shape.SegmentPayloadBytes();
  return op;
}

void Session::Track(InFlight op) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    inflight_.push_back(std::move(op));
  }
  cv_.notify_all();
}

Status Session::OnOffload(const ipc::ReceivedFrame& f) {
  KVP_ASSIGN_OR_RETURN(ipc::RegionSpan m, ipc::DecodeOffload(f.body));
  KVP_RETURN_IF_ERROR(CheckSpan(m));
  InFlight op = NewOp(f, m);
  const size_t end = tenant_->AdmitOffload(daemon_.pool(), op.pool_keys, op.first);
  if (end == op.first && op.first < op.pool_keys.size()) {
    return Status::NoSpace("tenant '" + tenant_->name() + "' quota of " +
                           std::to_string(tenant_->options().quota_bytes) + " bytes holds no more chunks");
  }
  op.pool_keys.resize(end);
  AcquireSlot();
  auto handle = daemon_.pool().Offload(op.pool_keys, BufferOf<const std::byte>(m));
  if (!handle.ok()) {
    ReleaseSlot();
    tenant_->SettleOffload(daemon_.pool(), op.pool_keys, op.first, end);
    return handle.status();
  }
  op.handle = std::move(*handle);
  Track(std::move(op));
  return Status::OK();
}

Status Session::OnRemove(const ipc::ReceivedFrame& f) {
  if (!tenant_) return Status::InvalidArgument("an admin connection has no tenant to remove from");
  KVP_ASSIGN_OR_RETURN(ipc::KeyList m, ipc::DecodeKeyList(f.body));
  std::vector<ChunkKey> keys = tenant_->PoolKeys(m.keys);
  size_t n = daemon_.pool().Remove(keys);
  tenant_->Forget(keys);
  Reply(f.header.request_id, ipc::Reply{StatusCode::kOk, n, {}});
  return Status::OK();
}

Status Session::OnFlush(const ipc::ReceivedFrame& f) {
  if (!f.body.empty()) return Status::InvalidArgument("a flush has no body");
  daemon_.pool().Flush();
  Reply(f.header.request_id, ipc::Reply{StatusCode::kOk, 0, {}});
  return Status::OK();
}

Status Session::OnStats(const ipc::ReceivedFrame& f) {
  if (!f.body.empty()) return Status::InvalidArgument("a stats request has no body");
  std::string json = daemon_.StatsJson(admin_ ? nullptr : tenant_).dump();
  Reply(f.header.request_id, ipc::Reply{StatusCode::kOk, 0, std::move(json)});
  return Status::OK();
}

void Session::Reply(uint64_t request_id, const ipc::Reply& reply) {
  Send(ipc::Frame(ipc::MsgType::kReply, request_id, ipc::EncodeReply(reply)));
}

void Session::Send(std::vector<std::byte> frame) {
  bool overflow = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (send_failed_) return;
    if (outbox_.size() >= kMaxOutbox) {
      overflow = send_failed_ = true;
    } else {
      outbox_.push_back(std::move(frame));
    }
  }
  if (overflow) shutdown(sock_.get(), SHUT_RDWR);  // a client that does not read is dropped
  cv_.notify_all();
}

void Session::WriteLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return !outbox_.empty() || completing_done_; });
    if (outbox_.empty()) return;  // completing_done_: nothing more will be queued
    std::vector<std::byte> frame = std::move(outbox_.front());
    outbox_.pop_front();
    if (send_failed_) continue;
    lock.unlock();
    Status sent = ipc::SendAll(sock_.get(), frame, -1, kSendTimeoutMs);
    lock.lock();
    if (!sent.ok() && !send_failed_) {  // the client is gone or stuck: stop reading it, drop the rest
      send_failed_ = true;
      shutdown(sock_.get(), SHUT_RDWR);
    }
  }
}

void Session::CompleteLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return !inflight_.empty() || reading_done_; });
    if (inflight_.empty()) break;
    InFlight op = std::move(inflight_.front());
    inflight_.pop_front();
    lock.unlock();
    Complete(op);
    ReleaseSlot();
    lock.lock();
  }
  completing_done_ = true;
  lock.unlock();
  cv_.notify_all();
}

void Session::Complete(InFlight& op) {
  TenantCounters& c = tenant_->counters();
  if (auto* r = std::get_if<RetrieveHandle>(&op.handle)) {
    Result<size_t> got = r->Wait();
    Status err = r->error();
    size_t n = got.ok() ? *got : op.first;
    size_t fresh = n > op.first ? n - op.first : 0;
    c.retrieved_chunks.fetch_add(fresh, std::memory_order_relaxed);
    c.retrieved_bytes.fetch_add(fresh * op.bytes_per_chunk, std::memory_order_relaxed);
    tenant_->Touch(std::span<const ChunkKey>(op.pool_keys).first(n));
    Status s = got.ok() ? err : got.status();
    Reply(op.request_id, ipc::Reply{s.code(), n, s.message()});
    return;
  }
  auto& o = std::get<OffloadHandle>(op.handle);
  Result<size_t> stored = o.Wait();
  tenant_->SettleOffload(daemon_.pool(), op.pool_keys, op.first, op.pool_keys.size());
  if (stored.ok()) {
    c.offloaded_chunks.fetch_add(*stored, std::memory_order_relaxed);
    c.offloaded_bytes.fetch_add(*stored * op.bytes_per_chunk, std::memory_order_relaxed);
    Reply(op.request_id, ipc::Reply{StatusCode::kOk, *stored, {}});
  } else {
    Reply(op.request_id, Refusal(stored.status()));
  }
}

void Session::AcquireSlot() {
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return slots_used_ < daemon_.options().max_inflight; });
    ++slots_used_;
  }
  daemon_.io_gate().Enter();
}

void Session::ReleaseSlot() {
  daemon_.io_gate().Leave();
  {
    std::lock_guard<std::mutex> lock(mu_);
    --slots_used_;
  }
  cv_.notify_all();
}

}  // namespace kvpool::daemon
