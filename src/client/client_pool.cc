// ClientPool: the Pool interface over a kvpoold connection.
#include <kvpool/client.h>

#include <unistd.h>

#include <atomic>
#include <mutex>
#include <nlohmann/json.hpp>

#include "client/client_requests.h"
#include "client/daemon_connection.h"
#include "core/requests.h"
#include "ipc/stats_json.h"
#include "util/log.h"

namespace kvpool {

SharedBuffer::SharedBuffer(std::shared_ptr<Lease> lease) : lease_(std::move(lease)) {}
SharedBuffer::~SharedBuffer() = default;
std::byte* SharedBuffer::data() const { return lease_ ? lease_->data() : nullptr; }
size_t SharedBuffer::size() const { return lease_ ? lease_->bytes : 0; }

namespace {

using client::DaemonConnection;
using client::SteadyClock;

std::string SocketPath(const std::string& address) {
  constexpr std::string_view kUnix = "unix:";
  if (address.compare(0, kUnix.size(), kUnix) == 0) return address.substr(kUnix.size());
  return address;
}

Status CheckClientOptions(const ClientOptions& o) {
  if (SocketPath(o.address).empty()) return Status::InvalidArgument("client.address is empty (unix:PATH)");
  if (o.tenant.empty()) return Status::InvalidArgument("client.tenant is empty");
  if (o.shared_bytes == 0) return Status::InvalidArgument("client.shared_bytes is 0");
  if (o.timeout_ms == 0) return Status::InvalidArgument("client.timeout_ms is 0");
  return Status::OK();
}

// Says once per process when a region is not all in huge pages, and how to
// change that: the daemon's direct reads into it are slower (client.h).
void NoteSmallPages(const ipc::SharedRegion& region, RegionPages pages) {
  static std::atomic<bool> said{false};
  if (pages == RegionPages::kSmall || region.huge_bytes() >= region.size() || said.exchange(true)) return;
  log::Info("kvpool client: " + std::to_string(region.huge_bytes() >> 20) + " of the shared region's " +
            std::to_string(region.size() >> 20) +
            " MiB are in huge pages; the daemon reads into 4 KiB pages more slowly. Set "
            "/sys/kernel/mm/transparent_hugepage/shmem_enabled to advise, or reserve 2 MiB pages "
            "(vm.nr_hugepages) and use RegionPages::kHugetlb (docs/daemon.md)");
}

Result<std::shared_ptr<RegionState>> NewRegion(uint64_t bytes, RegionPages pages) {
  KVP_ASSIGN_OR_RETURN(auto region, ipc::SharedRegion::Create(bytes, "kvpool-client-" + std::to_string(getpid()), pages));
  NoteSmallPages(*region, pages);
  auto state = std::make_shared<RegionState>();
  state->allocator = std::make_unique<client::RegionAllocator>(region->size());
  state->region = std::move(region);
  return state;
}

// True when every segment of `b` (chunks [first_chunk, keys)) is inside `r`.
template <typename Byte>
bool InRegion(const KvBufferT<Byte>& b, size_t keys, size_t payload, const ipc::SharedRegion& r) {
  const size_t chunks = keys - b.first_chunk;
  if (chunks == 0) return true;
  const uint64_t extent = uint64_t{chunks - 1} * b.chunk_stride + payload;
  for (Byte* base : b.layer_base) {
    if (base == nullptr || !r.Contains(base, extent)) return false;
  }
  return true;
}

template <typename Byte>
ipc::RegionSpan SpanOf(std::span<const ChunkKey> keys, const KvBufferT<Byte>& b, const ipc::SharedRegion& r) {
  ipc::RegionSpan span;
  span.keys.assign(keys.begin(), keys.end());
  span.first_chunk = b.first_chunk;
  span.chunk_stride = b.chunk_stride;
  for (Byte* base : b.layer_base) span.layer_offset.push_back(r.OffsetOf(base));
  return span;
}

class ClientPoolImpl final : public ClientPool {
 public:
  ClientPoolImpl(ClientOptions options, std::string path)
      : options_(std::move(options)), path_(std::move(path)) {}

  // Opens the first connection; the shape it reports is this pool's.
  Status Start() {
    std::lock_guard<std::mutex> lock(mu_);
    KVP_ASSIGN_OR_RETURN(region_, NewRegion(options_.shared_bytes, options_.region_pages));
    return DialLocked();
  }

  const PoolOptions& options() const override { return pool_options_; }

  size_t Lookup(std::span<const ChunkKey> keys) override {
    auto session = Acquire();
    if (!session.ok()) return 0;  // no daemon: a miss
    auto reply = session->conn->Call(ipc::MsgType::kLookup, ipc::EncodeKeyList({Capped(keys)}));
    if (!reply.ok()) return 0;
    return static_cast<size_t>(reply->value);
  }

  // A daemon that predates kFindChild refuses it: then nothing is found.
  size_t FindChild(std::span<const ChunkKey> prefix,
                   std::span<const ChunkKey> candidates) override {
    auto session = Acquire();
    if (!session.ok()) return candidates.size();
    if (prefix.size() > ipc::kMaxKeys || candidates.size() > ipc::kMaxKeys) return candidates.size();
    ipc::FindChildKeys m{{prefix.begin(), prefix.end()}, {candidates.begin(), candidates.end()}};
    auto reply = session->conn->Call(ipc::MsgType::kFindChild, ipc::EncodeFindChild(m));
    if (!reply.ok() || reply->value > candidates.size()) return candidates.size();
    return static_cast<size_t>(reply->value);
  }

  Result<RetrieveHandle> Retrieve(std::span<const ChunkKey> keys, const KvBuffer& destination,
                                  LayerReadyFn on_layer_ready) override;
  Result<OffloadHandle> Offload(std::span<const ChunkKey> keys, const ConstKvBuffer& source) override;

  size_t Remove(std::span<const ChunkKey> keys) override {
    auto session = Acquire();
    if (!session.ok()) return 0;
    auto reply = session->conn->Call(ipc::MsgType::kRemove, ipc::EncodeKeyList({Capped(keys)}));
    return reply.ok() ? static_cast<size_t>(reply->value) : 0;
  }

  void Flush() override {
    auto session = Acquire();
    if (session.ok()) (void)session->conn->Call(ipc::MsgType::kFlush, {});
  }

  PoolStats Stats() const override {
    auto text = const_cast<ClientPoolImpl*>(this)->DaemonStatsJson();
    if (!text.ok()) return PoolStats{};
    auto j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.contains("pool")) return PoolStats{};
    return ipc::PoolStatsFromJson(j["pool"]);
  }

  Result<SharedBuffer> AllocateShared(size_t bytes) override {
    std::shared_ptr<RegionState> region;
    {
      std::lock_guard<std::mutex> lock(mu_);
      region = region_;
    }
    auto offset = region->allocator->Allocate(bytes);
    if (!offset) {
      return Status::NoSpace("the shared region (" + std::to_string(region->region->size()) + " bytes, " +
                             std::to_string(region->allocator->free_bytes()) + " free) has no run of " +
                             std::to_string(bytes) + " bytes; raise ClientOptions::shared_bytes");
    }
    auto lease = std::make_shared<SharedBuffer::Lease>();
    lease->owner = region;
    lease->offset = *offset;
    lease->bytes = bytes;
    return SharedBuffer(std::move(lease));
  }

  Result<std::string> DaemonStatsJson() override {
    KVP_ASSIGN_OR_RETURN(Session session, Acquire());
    KVP_ASSIGN_OR_RETURN(ipc::Reply reply, session.conn->Call(ipc::MsgType::kStats, {}));
    return reply.text;
  }

  Status ReprobeBandwidths() override {
    return Status::Unsupported("a kvpoold client cannot re-probe the daemon's devices (send kvpoold SIGHUP)");
  }

  ClientStats client_stats() const override {
    std::lock_guard<std::mutex> lock(mu_);
    ClientStats s = stats_;
    s.requests = requests_.load();
    s.zero_copy_bytes = zero_copy_bytes_.load();
    s.staged_bytes = staged_bytes_.load();
    if (region_) {
      s.region_bytes = region_->region->size();
      s.region_huge_bytes = region_->region->huge_bytes();
    }
    return s;
  }

 private:
  struct Session {
    std::shared_ptr<DaemonConnection> conn;
    std::shared_ptr<RegionState> region;
  };

  // The live connection, dialling again when the last one was lost.
  Result<Session> Acquire() {
    requests_.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard<std::mutex> lock(mu_);
    if (conn_ && !conn_->broken()) return Session{conn_, region_};
    if (conn_) {
      ++stats_.disconnects;
      if (conn_->timed_out()) ++stats_.timeouts;
      if (!options_.reconnect) return Status::IOError("the connection to kvpoold at '" + path_ + "' was lost");
      if (conn_->timed_out()) {  // the daemon may still write into the old region: never reuse it
        KVP_ASSIGN_OR_RETURN(region_, NewRegion(options_.shared_bytes, options_.region_pages));
      }
      conn_.reset();
    }
    KVP_RETURN_IF_ERROR(DialLocked());
    return Session{conn_, region_};
  }

  Status DialLocked() {
    ipc::HelloOk hello;
    KVP_ASSIGN_OR_RETURN(conn_, DaemonConnection::Open(path_, options_.tenant, region_->region.get(),
                                                       static_cast<int>(options_.timeout_ms), &hello));
    if (stats_.connects > 0 && hello.shape.Fingerprint() != pool_options_.shape.Fingerprint()) {
      conn_.reset();
      return Status::IOError("kvpoold at '" + path_ + "' now serves a pool of another model shape (" +
                             hello.shape.name + ")");
    }
    pool_options_.shape = hello.shape;
    ++stats_.connects;
    return Status::OK();
  }

  static std::vector<ChunkKey> Capped(std::span<const ChunkKey> keys) {
    return std::vector<ChunkKey>(keys.begin(), keys.begin() + std::min<size_t>(keys.size(), ipc::kMaxKeys));
  }

  Result<client::Staging> Stage(const Session& s, size_t first, size_t chunks) {
    client::Staging st;
    st.first = first;
    st.chunks = chunks;
    st.layers = pool_options_.shape.layers;
    st.seg = pool_options_.shape.SegmentBytes();
    st.payload = pool_options_.shape.SegmentPayloadBytes();
    const uint64_t bytes = uint64_t{st.layers} * chunks * st.seg;
    auto deadline = SteadyClock::now() + std::chrono::milliseconds(options_.timeout_ms);
    auto offset = bytes <= s.region->region->size() ? s.region->allocator->AllocateBy(bytes, deadline) : std::nullopt;
    if (!offset) {
      return Status::Busy("no " + std::to_string(bytes) + " bytes of staging free in the shared region within " +
                          std::to_string(options_.timeout_ms) + " ms");
    }
    st.lease = std::make_shared<SharedBuffer::Lease>();
    st.lease->owner = s.region;
    st.lease->offset = *offset;
    st.lease->bytes = bytes;
    staged_bytes_.fetch_add(bytes, std::memory_order_relaxed);
    return st;
  }

  // Chunks per staged window: as many as fit in half the region.
  size_t WindowChunks(const Session& s, size_t chunks) const {
    const uint64_t per_chunk = uint64_t{pool_options_.shape.layers} * pool_options_.shape.SegmentBytes();
    const uint64_t fit = std::max<uint64_t>(1, s.region->region->size() / 2 / per_chunk);
    return static_cast<size_t>(std::min<uint64_t>(chunks, fit));
  }

  Result<RetrieveHandle> RetrieveZeroCopy(const Session& s, std::span<const ChunkKey> keys, const KvBuffer& dst,
                                          LayerReadyFn on_layer);
  Result<RetrieveHandle> RetrieveStaged(const Session& s, std::span<const ChunkKey> keys, const KvBuffer& dst,
                                        LayerReadyFn on_layer);
  // One staged window [first, end): sends it and returns the request.
  Result<std::shared_ptr<client::ClientRetrieve>> StartStagedWindow(const Session& s, std::span<const ChunkKey> keys,
                                                                    const KvBuffer& dst, size_t first, size_t end,
                                                                    LayerReadyFn on_layer);
  // Copies chunks [first, end) of `src` into staging and sends them.
  Result<OffloadHandle> StartStagedOffload(const Session& s, std::span<const ChunkKey> keys, const ConstKvBuffer& src,
                                           size_t first, size_t end);

  const ClientOptions options_;
  const std::string path_;
  PoolOptions pool_options_;
  mutable std::mutex mu_;
  std::shared_ptr<RegionState> region_;      // guarded by mu_
  std::shared_ptr<DaemonConnection> conn_;   // guarded by mu_
  ClientStats stats_;                        // guarded by mu_
  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> zero_copy_bytes_{0};
  std::atomic<uint64_t> staged_bytes_{0};
};

Result<RetrieveHandle> ClientPoolImpl::Retrieve(std::span<const ChunkKey> keys, const KvBuffer& destination,
                                                LayerReadyFn on_layer_ready) {
  const ModelShape& shape = pool_options_.shape;
  KVP_RETURN_IF_ERROR(internal::CheckKvBuffer(destination, "destination", keys.size(), shape.layers,
                                              shape.SegmentPayloadBytes()));
  keys = keys.first(std::min<size_t>(keys.size(), ipc::kMaxKeys));
  const size_t first = std::min(destination.first_chunk, keys.size());
  auto session = Acquire();
  if (!session.ok()) {
    auto done = client::ClientRetrieve::Finished(first, session.status());
    if (on_layer_ready) {
      for (uint32_t l = 0; l < shape.layers; ++l) on_layer_ready(l, first);
    }
    return RetrieveHandle(done);
  }
  if (InRegion(destination, keys.size(), shape.SegmentPayloadBytes(), *session->region->region)) {
    return RetrieveZeroCopy(*session, keys, destination, std::move(on_layer_ready));
  }
  return RetrieveStaged(*session, keys, destination, std::move(on_layer_ready));
}

Result<RetrieveHandle> ClientPoolImpl::RetrieveZeroCopy(const Session& s, std::span<const ChunkKey> keys,
                                                        const KvBuffer& dst, LayerReadyFn on_layer) {
  const uint32_t layers = pool_options_.shape.layers;
  ipc::Retrieve msg{SpanOf(keys, dst, *s.region->region), static_cast<bool>(on_layer)};
  auto request = std::make_shared<client::ClientRetrieve>(s.conn, dst.first_chunk, layers, nullptr);
  std::function<void(const ipc::LayerReady&)> events;
  if (on_layer) {
    events = [on_layer, layers](const ipc::LayerReady& e) {
      if (e.layer < layers) on_layer(e.layer, static_cast<size_t>(e.valid_chunks));
    };
  }
  // The destination's region stays mapped until the reply, whatever the caller does.
  KVP_ASSIGN_OR_RETURN(auto call, s.conn->Start(ipc::MsgType::kRetrieve, ipc::EncodeRetrieve(msg), events, s.region));
  request->Attach(std::move(call));
  zero_copy_bytes_.fetch_add(uint64_t{layers} * (keys.size() - dst.first_chunk) * pool_options_.shape.SegmentPayloadBytes(),
                             std::memory_order_relaxed);
  return RetrieveHandle(request);
}

Result<std::shared_ptr<client::ClientRetrieve>> ClientPoolImpl::StartStagedWindow(
    const Session& s, std::span<const ChunkKey> keys, const KvBuffer& dst, size_t first, size_t end,
    LayerReadyFn on_layer) {
  const uint32_t layers = pool_options_.shape.layers;
  KVP_ASSIGN_OR_RETURN(client::Staging staging, Stage(s, first, end - first));
  auto staged = std::make_shared<client::ClientRetrieve::StagedCopy>();
  staged->destination = dst;
  staged->copied.assign(layers, false);
  ipc::Retrieve msg{staging.Span(keys), true};
  staged->staging = std::move(staging);
  auto request = std::make_shared<client::ClientRetrieve>(s.conn, first, layers, staged);
  // Each landed layer is copied out on the receiver thread, then announced.
  auto events = [staged, on_layer, layers](const ipc::LayerReady& e) {
    if (e.layer >= layers) return;
    {
      std::lock_guard<std::mutex> lock(staged->mu);
      staged->staging.CopyOutLayer(staged->destination, e.layer, static_cast<size_t>(e.valid_chunks));
      staged->copied[e.layer] = true;
    }
    if (on_layer) on_layer(e.layer, static_cast<size_t>(e.valid_chunks));
  };
  KVP_ASSIGN_OR_RETURN(auto call, s.conn->Start(ipc::MsgType::kRetrieve, ipc::EncodeRetrieve(msg), events, staged));
  request->Attach(std::move(call));
  return request;
}

Result<RetrieveHandle> ClientPoolImpl::RetrieveStaged(const Session& s, std::span<const ChunkKey> keys,
                                                      const KvBuffer& dst, LayerReadyFn on_layer) {
  const size_t first = dst.first_chunk;
  const size_t window = WindowChunks(s, keys.size() - first);
  if (first + window >= keys.size()) {  // one window: asynchronous, layer by layer
    KVP_ASSIGN_OR_RETURN(auto request, StartStagedWindow(s, keys, dst, first, keys.size(), std::move(on_layer)));
    return RetrieveHandle(request);
  }
  // Larger than the staging: window after window, here; layers are announced at the end.
  size_t held = first;
  Status error;
  while (held < keys.size()) {
    const size_t end = std::min(keys.size(), held + window);
    auto request = StartStagedWindow(s, keys, dst, held, end, {});
    if (!request.ok()) {
      error = request.status();
      break;
    }
    RetrieveHandle handle(*request);
    auto got = handle.Wait();
    if (!got.ok()) return got.status();
    error = handle.error();
    held = std::max(held, *got);
    if (*got < end) break;
  }
  if (on_layer) {
    for (uint32_t l = 0; l < pool_options_.shape.layers; ++l) on_layer(l, held);
  }
  return RetrieveHandle(client::ClientRetrieve::Finished(held, error));
}

Result<OffloadHandle> ClientPoolImpl::StartStagedOffload(const Session& s, std::span<const ChunkKey> keys,
                                                         const ConstKvBuffer& src, size_t first, size_t end) {
  KVP_ASSIGN_OR_RETURN(client::Staging staging, Stage(s, first, end - first));
  staging.CopyIn(src);
  ipc::RegionSpan span = staging.Span(keys);
  KVP_ASSIGN_OR_RETURN(auto call, s.conn->Start(ipc::MsgType::kOffload, ipc::EncodeOffload(span), {}, staging.lease));
  return OffloadHandle(std::make_shared<client::ClientOffload>(s.conn, std::move(call)));
}

Result<OffloadHandle> ClientPoolImpl::Offload(std::span<const ChunkKey> keys, const ConstKvBuffer& source) {
  const ModelShape& shape = pool_options_.shape;
  KVP_RETURN_IF_ERROR(internal::CheckKvBuffer(source, "source", keys.size(), shape.layers,
                                              shape.SegmentPayloadBytes()));
  keys = keys.first(std::min<size_t>(keys.size(), ipc::kMaxKeys));
  const size_t first = std::min(source.first_chunk, keys.size());
  if (first == keys.size()) return OffloadHandle(client::ClientOffload::Finished(size_t{0}));
  KVP_ASSIGN_OR_RETURN(Session s, Acquire());
  if (InRegion(source, keys.size(), shape.SegmentPayloadBytes(), *s.region->region)) {
    ipc::RegionSpan span = SpanOf(keys, source, *s.region->region);
    KVP_ASSIGN_OR_RETURN(auto call, s.conn->Start(ipc::MsgType::kOffload, ipc::EncodeOffload(span), {}, s.region));
    zero_copy_bytes_.fetch_add(uint64_t{shape.layers} * (keys.size() - first) * shape.SegmentPayloadBytes(),
                               std::memory_order_relaxed);
    return OffloadHandle(std::make_shared<client::ClientOffload>(s.conn, std::move(call)));
  }
  // Staged: the source is copied now, so it need not outlive this call.
  const size_t window = WindowChunks(s, keys.size() - first);
  if (first + window >= keys.size()) return StartStagedOffload(s, keys, source, first, keys.size());
  size_t stored = 0;
  for (size_t at = first; at < keys.size(); at += window) {
    auto handle = StartStagedOffload(s, keys, source, at, std::min(keys.size(), at + window));
    Result<size_t> got = handle.ok() ? handle->Wait() : Result<size_t>(handle.status());
    if (!got.ok()) {
      if (stored == 0) return OffloadHandle(client::ClientOffload::Finished(got.status()));
      break;
    }
    stored += *got;
  }
  return OffloadHandle(client::ClientOffload::Finished(stored));
}

}  // namespace

Result<std::unique_ptr<ClientPool>> ClientPool::Connect(const ClientOptions& options) {
  KVP_RETURN_IF_ERROR(CheckClientOptions(options));
  auto pool = std::make_unique<ClientPoolImpl>(options, SocketPath(options.address));
  KVP_RETURN_IF_ERROR(pool->Start());
  return std::unique_ptr<ClientPool>(std::move(pool));
}

}  // namespace kvpool
