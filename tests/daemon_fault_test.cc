// kvpoold under faults: clients SIGKILLed mid-request, the daemon killed,
// stopped or terminated under load, and hostile frames on its socket.
#include <fcntl.h>
#include <sys/mman.h>

#include <nlohmann/json.hpp>

#include "daemon_fixture.h"
#include "ipc/shared_region.h"
#include "ipc/unix_socket.h"
#include "ipc/wire.h"

namespace kvpool::testing {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::unique_ptr<ClientPool> Connect(const ClientOptions& o) {
  auto pool = ClientPool::Connect(o);
  EXPECT_TRUE(pool.ok()) << pool.status().ToString();
  return pool.ok() ? std::move(*pool) : nullptr;
}

// Clients the daemon still counts, polled until it is `want` or 10 s passed.
uint64_t WaitForClients(ClientPool& pool, uint64_t want) {
  uint64_t n = 0;
  for (int i = 0; i < 500; ++i) {
    auto text = pool.DaemonStatsJson();
    EXPECT_TRUE(text.ok()) << text.status().ToString();
    if (!text.ok()) return ~uint64_t{0};
    n = nlohmann::json::parse(*text)["clients"].size();
    if (n == want) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return n;
}

// Every chunk Lookup reports for `keys` reads back byte-exact as `expected`,
// and the pool holds exactly the segments of its visible chunks.
void ExpectWholeChunksOnly(ClientPool& pool, std::span<const ChunkKey> keys, SharedKv& expected) {
  const size_t present = pool.Lookup(keys);
  SharedKv got(pool, keys.size(), 0);
  auto h = pool.Retrieve(keys, got.View(), {});
  ASSERT_TRUE(h.ok());
  auto n = h->Wait();
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, present);
  EXPECT_TRUE(got.SameAs(expected, *n)) << "a visible chunk read back wrong";
  PoolStats s = pool.Stats();
  EXPECT_EQ(s.segments, s.chunks * DaemonTestShape().layers) << "segments of a half-stored chunk remain";
  for (const DeviceStats& d : s.devices) {
    if (d.role == "home") {
      EXPECT_EQ(d.used_bytes, d.segments * DaemonTestShape().SegmentBytes()) << d.name;
    }
  }
}

// A child that connects, starts `offloads` (and retrieves of what it stored
// first) and waits to be killed; returns its pid once its requests are sent.
pid_t StartDoomedClient(const DaemonProcess& d, const std::vector<ChunkKey>& keys, bool retrieve) {
  int ready[2];
  EXPECT_EQ(pipe(ready), 0);
  pid_t pid = fork();
  if (pid == 0) {
    close(ready[0]);
    auto pool = ClientPool::Connect(d.Options());
    if (!pool.ok()) _exit(3);
    SharedKv src(**pool, keys.size(), 21);
    std::vector<OffloadHandle> offloads;
    std::vector<RetrieveHandle> retrieves;
    std::vector<std::unique_ptr<SharedKv>> dst;  // one destination per read: no two write the same bytes
    if (retrieve) {  // store first, then kill it while many reads are in flight
      auto h = (*pool)->Offload(keys, src.ConstView());
      if (!h.ok() || !h->Wait().ok()) _exit(4);
      for (int i = 0; i < 8; ++i) {
        dst.push_back(std::make_unique<SharedKv>(**pool, keys.size(), 0));
        auto r = (*pool)->Retrieve(keys, dst.back()->View(), {});
        if (r.ok()) retrieves.push_back(std::move(*r));
      }
    } else {
      for (size_t i = 0; i < keys.size(); i += 8) {  // prefixes of growing length
        auto h = (*pool)->Offload(std::span<const ChunkKey>(keys).first(std::min(keys.size(), i + 8)), src.ConstView());
        if (h.ok()) offloads.push_back(std::move(*h));
      }
    }
    char c = 1;
    (void)!write(ready[1], &c, 1);
    pause();
    _exit(0);
  }
  close(ready[1]);
  char c = 0;
  EXPECT_EQ(read(ready[0], &c, 1), 1) << "the doomed client did not get its requests out";
  close(ready[0]);
  return pid;
}

TEST(DaemonFault, ClientKilledMidOffloadLeavesOnlyWholeChunks) {
  TempDir dir;
  DaemonProcess d(dir);
  d.Start();
  auto keys = MakeKeys(DaemonTestShape(), 256, 30);
  pid_t child = StartDoomedClient(d, keys, /*retrieve=*/false);
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  auto pool = Connect(d.Options());
  ASSERT_TRUE(pool);
  EXPECT_EQ(WaitForClients(*pool, 1), 1u) << "the killed client's session was not released";
  SharedKv expected(*pool, keys.size(), 21);
  ExpectWholeChunksOnly(*pool, keys, expected);
  // The daemon is not stuck: it stores and serves the rest.
  auto h = pool->Offload(keys, expected.ConstView());
  ASSERT_TRUE(h.ok());
  EXPECT_TRUE(h->Wait().ok());
  EXPECT_EQ(pool->Lookup(keys), keys.size());
}

TEST(DaemonFault, ClientKilledMidRetrieveLeavesDaemonServing) {
  TempDir dir;
  DaemonProcess d(dir);
  d.Start();
  auto keys = MakeKeys(DaemonTestShape(), 64, 31);
  pid_t child = StartDoomedClient(d, keys, /*retrieve=*/true);
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  auto pool = Connect(d.Options());
  ASSERT_TRUE(pool);
  EXPECT_EQ(WaitForClients(*pool, 1), 1u);
  SharedKv expected(*pool, keys.size(), 21);
  ExpectWholeChunksOnly(*pool, keys, expected);
  EXPECT_EQ(pool->Lookup(keys), keys.size());
}

TEST(DaemonFault, KilledDaemonFailsCallsFastAndRestartedOneIsReconnected) {
  TempDir dir;
  DaemonProcess d(dir);
  d.Start();
  auto pool = Connect(d.Options());
  ASSERT_TRUE(pool);
  auto keys = MakeKeys(DaemonTestShape(), 16, 32);
  SharedKv src(*pool, 16, 5), dst(*pool, 16, 0);
  ASSERT_TRUE(pool->Offload(keys, src.ConstView())->Wait().ok());
  pool->Flush();
  d.Kill(SIGKILL);

  auto t0 = Clock::now();
  EXPECT_EQ(pool->Lookup(keys), 0u);
  auto r = pool->Retrieve(keys, dst.View(), {});
  ASSERT_TRUE(r.ok());
  auto n = r->Wait();
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0u);
  EXPECT_EQ(r->error().code(), StatusCode::kIOError) << r->error().ToString();
  auto o = pool->Offload(keys, src.ConstView());
  EXPECT_FALSE(o.ok() && o->Wait().ok());
  EXPECT_LT(SecondsSince(t0), 1.0) << "calls on a dead daemon must fail fast";

  d.Start();  // recovers the extent
  EXPECT_EQ(pool->Lookup(keys), 16u) << "the restarted daemon was not reconnected to";
  auto r2 = pool->Retrieve(keys, dst.View(), {});
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(*r2->Wait(), 16u);
  EXPECT_TRUE(dst.SameAs(src, 16)) << "zero-copy buffers keep working across the reconnect";
  EXPECT_GE(pool->client_stats().connects, 2u);
}

TEST(DaemonFault, StoppedDaemonTimesOutAndIsReconnectedWithANewRegion) {
  TempDir dir;
  DaemonProcess d(dir);
  d.Start();
  ClientOptions o = d.Options();
  o.timeout_ms = 400;
  auto pool = Connect(o);
  ASSERT_TRUE(pool);
  auto keys = MakeKeys(DaemonTestShape(), 8, 33);
  KvData src(DaemonTestShape(), 8, 6), dst(DaemonTestShape(), 8);
  ASSERT_TRUE(pool->Offload(keys, src.ConstView())->Wait().ok());

  kill(d.pid(), SIGSTOP);
  auto t0 = Clock::now();
  auto r = pool->Retrieve(keys, dst.View(), {});
  ASSERT_TRUE(r.ok());
  auto n = r->Wait();
  double waited = SecondsSince(t0);
  kill(d.pid(), SIGCONT);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0u);
  EXPECT_EQ(r->error().code(), StatusCode::kIOError);
  EXPECT_NE(r->error().message().find("did not answer"), std::string::npos) << r->error().ToString();
  EXPECT_LT(waited, 2.0) << "a stopped daemon must not hang a call past the timeout";

  auto r2 = pool->Retrieve(keys, dst.View(), {});
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(*r2->Wait(), 8u);
  EXPECT_TRUE(dst.SameAs(src, 8));
  ClientStats cs = pool->client_stats();
  EXPECT_EQ(cs.timeouts, 1u);
  EXPECT_EQ(cs.connects, 2u);
}

TEST(DaemonFault, SigtermLosesNoAcceptedOffload) {
  TempDir dir;
  DaemonProcess d(dir, "", 128);
  d.Start();
  auto pool = Connect(d.Options());
  ASSERT_TRUE(pool);
  const size_t prefixes = 24, chunks = 16;
  std::vector<std::vector<ChunkKey>> keys;
  std::vector<OffloadHandle> handles;
  SharedKv src(*pool, chunks, 8);
  for (size_t p = 0; p < prefixes; ++p) {
    keys.push_back(MakeKeys(DaemonTestShape(), chunks, 100 + p));
    auto h = pool->Offload(keys.back(), src.ConstView());
    ASSERT_TRUE(h.ok());
    handles.push_back(std::move(*h));
  }
  EXPECT_EQ(d.Kill(SIGTERM), 0) << "kvpoold must exit 0 on SIGTERM";
  std::vector<bool> stored;
  for (auto& h : handles) {
    auto n = h.Wait();
    stored.push_back(n.ok() && *n == chunks);
  }
  d.Start();
  SharedKv dst(*pool, chunks, 0);
  size_t kept = 0;
  for (size_t p = 0; p < prefixes; ++p) {
    if (!stored[p]) continue;
    ++kept;
    EXPECT_EQ(pool->Lookup(keys[p]), chunks) << "prefix " << p << " was acknowledged, then lost";
    auto r = pool->Retrieve(keys[p], dst.View(), {});
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(*r->Wait(), chunks);
    EXPECT_TRUE(dst.SameAs(src, chunks));
  }
  EXPECT_GT(kept, 0u) << "no offload was acknowledged before the daemon stopped";
}

// --- Hostile frames ---------------------------------------------------------

class RawPeer {
 public:
  explicit RawPeer(const DaemonProcess& d) {
    auto s = ipc::ConnectUnix(d.socket(), 2000);
    EXPECT_TRUE(s.ok());
    if (s.ok()) sock_ = std::move(*s);
  }
  void Send(ipc::MsgType type, uint64_t id, const std::vector<std::byte>& body, int fd = -1) {
    ASSERT_TRUE(ipc::SendAll(sock_.get(), ipc::Frame(type, id, body), fd, 2000).ok());
  }
  Result<ipc::ReceivedFrame> Receive() { return ipc::ReceiveFrame(sock_.get(), 3000); }
  ipc::Reply ReceiveReply() {
    auto f = Receive();
    EXPECT_TRUE(f.ok()) << f.status().ToString();
    if (!f.ok()) return {};
    auto r = ipc::DecodeReply(f->body);
    EXPECT_TRUE(r.ok());
    return r.ok() ? *r : ipc::Reply{};
  }
  int fd() const { return sock_.get(); }
  // The daemon closes the connection, after at most one refusal.
  void ExpectClosed() {
    auto f = Receive();
    if (f.ok()) {
      ASSERT_EQ(f->header.type, ipc::MsgType::kReply);
      auto r = ipc::DecodeReply(f->body);
      ASSERT_TRUE(r.ok());
      EXPECT_NE(r->code, StatusCode::kOk);
      f = Receive();
    }
    EXPECT_FALSE(f.ok()) << "the connection stayed open";
  }

 private:
  ipc::Fd sock_;
};

void ExpectRefusedHello(const DaemonProcess& d, int fd, uint64_t bytes, const std::string& why) {
  RawPeer peer(d);
  peer.Send(ipc::MsgType::kHello, 0, ipc::EncodeHello({"default", bytes}), fd);
  ipc::Reply r = peer.ReceiveReply();
  EXPECT_EQ(r.code, StatusCode::kInvalidArgument);
  EXPECT_NE(r.text.find(why), std::string::npos) << r.text;
}

TEST(DaemonFault, RefusesRegionsThatAreNotSealedMemfds) {
  TempDir dir;
  DaemonProcess d(dir);
  d.Start();
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  ExpectRefusedHello(d, pipefd[0], 2 << 20, "not a memfd");
  int unsealed = memfd_create("unsealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  ASSERT_EQ(ftruncate(unsealed, 2 << 20), 0);
  ExpectRefusedHello(d, unsealed, 2 << 20, "not sealed");
  auto region = ipc::SharedRegion::Create(2 << 20, "test");
  ASSERT_TRUE(region.ok());
  ExpectRefusedHello(d, (*region)->fd(), 4 << 20, "does not match");
  ExpectRefusedHello(d, -1, 2 << 20, "exactly one memfd");
  close(pipefd[0]);
  close(pipefd[1]);
  close(unsealed);
}

TEST(DaemonFault, RefusesSpansOutsideTheRegionAndBadSizes) {
  TempDir dir;
  DaemonProcess d(dir);
  d.Start();
  auto region = ipc::SharedRegion::Create(2 << 20, "test");
  ASSERT_TRUE(region.ok());
  RawPeer peer(d);
  peer.Send(ipc::MsgType::kHello, 0, ipc::EncodeHello({"default", (*region)->size()}), (*region)->fd());
  auto ok = peer.Receive();
  ASSERT_TRUE(ok.ok());
  ASSERT_EQ(ok->header.type, ipc::MsgType::kHelloOk);

  const ModelShape s = DaemonTestShape();
  auto keys = MakeKeys(s, 4, 34);
  auto span = [&](uint64_t base, uint64_t stride) {
    ipc::RegionSpan sp;
    sp.keys = keys;
    sp.chunk_stride = stride;
    for (uint32_t l = 0; l < s.layers; ++l) sp.layer_offset.push_back(base + l * 4 * stride);
    return sp;
  };
  struct Case {
    ipc::RegionSpan span;
    const char* why;
  };
  ipc::RegionSpan few_layers = span(0, s.SegmentBytes());
  few_layers.layer_offset.pop_back();
  ipc::RegionSpan past_keys = span(0, s.SegmentBytes());
  past_keys.first_chunk = 9;
  std::vector<Case> cases = {
      {span((2 << 20) - 4096, s.SegmentBytes()), "past the end"},
      {span(0, ~uint64_t{0} / 2), "overflows"},
      {span(0, 16), "smaller than a segment"},
      {few_layers, "layers"},
      {past_keys, "past the last key"},
  };
  uint64_t id = 1;
  for (const Case& c : cases) {
    peer.Send(ipc::MsgType::kRetrieve, id, ipc::EncodeRetrieve({c.span, false}));
    ipc::Reply r = peer.ReceiveReply();
    EXPECT_EQ(r.code, StatusCode::kInvalidArgument) << c.why;
    EXPECT_NE(r.text.find(c.why), std::string::npos) << r.text;
    peer.Send(ipc::MsgType::kOffload, id + 1, ipc::EncodeOffload(c.span));
    ipc::Reply w = peer.ReceiveReply();
    EXPECT_EQ(w.code, StatusCode::kInvalidArgument) << c.why;
    id += 2;
  }
  // A cut body is refused and the connection goes on.
  std::vector<std::byte> cut = ipc::EncodeRetrieve({span(0, s.SegmentBytes()), false});
  cut.resize(cut.size() - 5);
  peer.Send(ipc::MsgType::kRetrieve, 50, cut);
  ipc::Reply r = peer.ReceiveReply();
  EXPECT_EQ(r.code, StatusCode::kInvalidArgument);
  EXPECT_NE(r.text.find("cut short"), std::string::npos) << r.text;
  peer.Send(ipc::MsgType::kLookup, 51, ipc::EncodeKeyList({keys}));
  EXPECT_EQ(peer.ReceiveReply().code, StatusCode::kOk);
  // A client may not send daemon frames.
  peer.Send(ipc::MsgType::kLayerReady, 52, ipc::EncodeLayerReady({0, 1}));
  EXPECT_EQ(peer.ReceiveReply().code, StatusCode::kInvalidArgument);
}

TEST(DaemonFault, GarbageClosesOnlyThatConnection) {
  TempDir dir;
  DaemonProcess d(dir);
  d.Start();
  {
    RawPeer peer(d);
    std::vector<std::byte> junk(64, std::byte{0x5a});
    ASSERT_TRUE(ipc::SendAll(peer.fd(), junk, -1, 1000).ok());
    peer.ExpectClosed();
  }
  {
    RawPeer peer(d);  // a header announcing a body over the limit
    std::byte h[ipc::kHeaderBytes];
    ipc::EncodeHeader({ipc::MsgType::kHello, 0, ipc::kMaxBodyBytes}, h);
    h[16] = std::byte{0xff};
    h[17] = std::byte{0xff};
    h[18] = std::byte{0xff};
    h[19] = std::byte{0x7f};
    ASSERT_TRUE(ipc::SendAll(peer.fd(), h, -1, 1000).ok());
    peer.ExpectClosed();
  }
  auto pool = Connect(d.Options());
  ASSERT_TRUE(pool) << "the daemon stopped serving after garbage";
  EXPECT_EQ(pool->Lookup(MakeKeys(DaemonTestShape(), 2, 35)), 0u);
}

}  // namespace
}  // namespace kvpool::testing
