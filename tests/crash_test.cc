// Crash consistency of extent devices: a child process offloads continuously
// and is SIGKILLed at random points; after each kill the parent reopens the
// pool and every chunk that Lookup reports must come back byte for byte.
// Chunk bytes are a function of (chunk key, layer), so the parent can check
// them from the keys alone.
//
// Crash.Spdk* runs the same rounds on SPDK devices (KVPOOL_TEST_SPDK_TRANSPORT,
// tests/hw/spdk_nvmf_test.sh). SPDK's environment must not be inherited
// across fork, so there the parent never touches SPDK: it also verifies in a
// forked child.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <deque>
#include <iostream>
#include <random>
#include <set>
#include <thread>

#include "core/pool_impl.h"
#include "tier/throttled_device.h"
#include "extent_test_util.h"
#include "pool_helpers.h"

namespace kvpool::testing {
namespace {

constexpr int kRounds = 24;
constexpr size_t kDocs = 48;  // documents are seeds 0 .. kDocs-1
constexpr size_t kChunksPerDoc = 6;

ModelShape Shape() { return *ModelShape::Preset("tiny"); }  // 4 layers x 32 KiB

// Deterministic bytes of one segment, from its chunk key and layer only.
void FillSegment(const ChunkKey& key, uint32_t layer, std::byte* out, size_t bytes) {
  uint64_t x = key.hi ^ (key.lo * 0x9e3779b97f4a7c15ull) ^ (uint64_t{layer} << 56);
  for (size_t i = 0; i < bytes; i += 8) {
    x += 0x9e3779b97f4a7c15ull;  // splitmix64
    uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    std::memcpy(out + i, &z, std::min<size_t>(8, bytes - i));
  }
}

// The KV of one document, laid out as KvData does (one array per layer).
struct Doc {
  uint64_t seed;
  std::vector<ChunkKey> keys;
  std::vector<std::vector<std::byte>> layers;

  explicit Doc(uint64_t s) : seed(s), keys(MakeKeys(Shape(), kChunksPerDoc, s)) {
    const size_t seg = Shape().SegmentPayloadBytes();
    layers.resize(Shape().layers);
    for (uint32_t l = 0; l < layers.size(); ++l) {
      layers[l].resize(seg * kChunksPerDoc);
      for (size_t c = 0; c < kChunksPerDoc; ++c) FillSegment(keys[c], l, &layers[l][c * seg], seg);
    }
  }
  ConstKvBuffer View() const {
    ConstKvBuffer b;
    for (const auto& l : layers) b.layer_base.push_back(l.data());
    b.chunk_stride = Shape().SegmentPayloadBytes();
    return b;
  }
};

PoolOptions CrashPoolOptions(const std::string& dir, const std::string& engine) {
  PoolOptions o;
  o.shape = Shape();
  const uint64_t chunk = uint64_t{o.shape.SegmentBytes()} * o.shape.layers;
  // Room for about half of all documents: eviction (and slot reuse) happens.
  if (engine == "spdk") {
    const std::vector<std::string> t = SpdkTransports();
    o.devices.push_back(SpdkOptions("ssd0", t.at(0), 60 * chunk, 2.0));
    const uint64_t cap1 = 80 * chunk;
    o.devices.push_back(t.size() > 1
                            ? SpdkOptions("ssd1", t[1], cap1, 3.0)
                            : ExtentOptions("ssd1", dir + "/ssd1.extent", cap1, "psync", 3.0));
  } else {
    o.devices.push_back(ExtentOptions("ssd0", dir + "/ssd0.extent", 60 * chunk, engine, 2.0));
    o.devices.push_back(ExtentOptions("ssd1", dir + "/ssd1.extent", 80 * chunk, engine, 3.0));
  }
  o.devices.push_back(DramOptions("dram0", 20 * chunk, 0.5));
  o.devices[1].io_threads = 2;
  return o;
}

// The child's pool, opened with extents checkpointing every `interval`
// (throttled to `extent_gibps` when > 0); tells the parent it is ready on
// `ready_fd`. Exits the child on any error; never uses gtest.
std::unique_ptr<PoolImpl> OpenChildPool(const PoolOptions& o, std::chrono::milliseconds interval,
                                        double extent_gibps, int ready_fd) {
  ExtentTuning tuning;
  tuning.checkpoint_interval = interval;
  const uint32_t payload = uint32_t(o.shape.SegmentPayloadBytes());
  const ChunkKey pool_id = Namespace::Make(o.shape.Fingerprint(), o.tenant_salt).id;
  std::vector<std::unique_ptr<Device>> devices;
  for (const DeviceOptions& d : o.devices) {
    auto dev = d.kind == DeviceKind::kExtent ? OpenExtentDevice(d, payload, pool_id, tuning)
#if KVPOOL_HAVE_SPDK
               : d.kind == DeviceKind::kSpdk ? OpenSpdkDevice(d, payload, pool_id, tuning)
#endif
                                             : OpenDevice(d, payload, pool_id);
    if (!dev.ok()) {
      std::cerr << "child: " << dev.status().ToString() << "\n";
      _exit(3);
    }
    const bool slow = extent_gibps > 0 && d.kind == DeviceKind::kExtent;
    devices.push_back(slow ? NewThrottledDevice(std::move(dev).value(), extent_gibps)
                           : std::move(dev).value());
  }
  auto pool = PoolImpl::Create(o, std::move(devices));
  if (!pool.ok()) _exit(4);
  char one = 1;
  if (::write(ready_fd, &one, 1) != 1) _exit(5);
  return std::move(pool).value();
}

// The child: opens the pool (checkpointing every few ms to tens of ms),
// tells the parent it is ready, then offloads and removes documents until
// it is killed. Never returns normally; never uses gtest.
[[noreturn]] void RunChild(const PoolOptions& o, uint64_t round, int ready_fd) {
  std::mt19937_64 rng(round * 7919 + 1);
  auto pool = OpenChildPool(o, std::chrono::milliseconds(5 + rng() % 200), 0, ready_fd);
  std::deque<std::pair<std::unique_ptr<Doc>, OffloadHandle>> in_flight;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < give_up) {
    auto doc = std::make_unique<Doc>(rng() % kDocs);
    if (rng() % 8 == 0) pool->Remove(std::span(doc->keys).subspan(rng() % kChunksPerDoc));
    auto h = pool->Offload(doc->keys, doc->View());
    if (!h.ok()) _exit(6);
    in_flight.emplace_back(std::move(doc), std::move(h).value());
    if (in_flight.size() >= 4) {
      (void)in_flight.front().second.Wait();
      in_flight.pop_front();
    }
  }
  _exit(0);  // not killed in 30 s: the parent reports it
}

struct RoundResult {
  bool opened = false;     // the pool reopened after the crash
  size_t found = 0;        // chunks Lookup reported, over all documents
  size_t exact = 0;        // of those, retrieved byte for byte
  size_t wrong_bytes = 0;  // chunks retrieved with wrong bytes (must stay 0)
  size_t recovered = 0;    // Stats().recovered_chunks
};

RoundResult VerifyAfterCrash(const PoolOptions& o) {
  RoundResult r;
  auto opened = Pool::Open(o);
  EXPECT_TRUE(opened.ok()) << opened.status().ToString();
  if (!opened.ok()) return r;
  r.opened = true;
  Pool& pool = **opened;
  r.recovered = pool.Stats().recovered_chunks;
  for (uint64_t seed = 0; seed < kDocs; ++seed) {
    Doc want(seed);
    size_t n = pool.Lookup(want.keys);
    r.found += n;
    if (n == 0) continue;
    KvData got(o.shape, kChunksPerDoc);
    RetrieveOutcome out = RetrieveSync(pool, want.keys, got);
    size_t valid = out.valid.ok() ? std::min(*out.valid, n) : 0;
    ConstKvBuffer g = got.ConstView(), w = want.View();
    for (size_t c = 0; c < valid; ++c) {
      bool same = true;
      for (uint32_t l = 0; l < o.shape.layers; ++l) {
        same &= std::memcmp(g.Segment(c, l), w.Segment(c, l), o.shape.SegmentPayloadBytes()) == 0;
      }
      (same ? r.exact : r.wrong_bytes) += 1;
    }
  }
  return r;
}

// Forks a child, kills it after it has run 50-400 ms. Returns false if the
// child did not come up or died on its own.
bool RunAndKill(const PoolOptions& o, uint64_t round, std::mt19937_64& rng, int* delay_ms) {
  int fds[2];
  if (::pipe(fds) != 0) return false;
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    RunChild(o, round, fds[1]);
  }
  ::close(fds[1]);
  pollfd p{fds[0], POLLIN, 0};
  char byte = 0;
  bool ready = ::poll(&p, 1, 20000) == 1 && ::read(fds[0], &byte, 1) == 1;
  ::close(fds[0]);
  *delay_ms = 50 + int(rng() % 351);
  if (ready) std::this_thread::sleep_for(std::chrono::milliseconds(*delay_ms));
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return ready && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

// VerifyAfterCrash in a forked child (which alone brings SPDK up).
RoundResult VerifyInChild(const PoolOptions& o) {
  RoundResult r;
  int fds[2];
  if (::pipe(fds) != 0) return r;
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    RoundResult mine = VerifyAfterCrash(o);
    _exit(::write(fds[1], &mine, sizeof(mine)) == ssize_t(sizeof(mine)) ? 0 : 1);
  }
  ::close(fds[1]);
  if (::read(fds[0], &r, sizeof(r)) != ssize_t(sizeof(r))) r = RoundResult{};
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return r;
}

// Zeroes the first MiB of every SPDK namespace in `o`, in a child.
bool WipeInChild(const PoolOptions& o) {
  pid_t pid = ::fork();
  if (pid == 0) {
    bool ok = true;
    for (const DeviceOptions& d : o.devices) ok &= d.kind != DeviceKind::kSpdk || WipeSpdk(d);
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

void RunCrashRounds(const PoolOptions& o, bool verify_in_child) {
  std::mt19937_64 rng(20241126);
  size_t total_found = 0, total_exact = 0, total_wrong = 0;
  for (int round = 0; round < kRounds; ++round) {
    int delay_ms = 0;
    ASSERT_TRUE(RunAndKill(o, uint64_t(round), rng, &delay_ms)) << "round " << round;
    RoundResult r = verify_in_child ? VerifyInChild(o) : VerifyAfterCrash(o);
    ASSERT_TRUE(r.opened) << "round " << round << ": the pool did not reopen";
    std::cout << "round " << round << ": killed after " << delay_ms << " ms, " << r.found
              << " chunks found by Lookup (" << r.recovered << " recovered), " << r.exact
              << " byte-exact, " << r.wrong_bytes << " wrong" << std::endl;
    EXPECT_EQ(r.wrong_bytes, 0u) << "round " << round;
    EXPECT_EQ(r.exact, r.found) << "round " << round << ": a chunk Lookup reported was not read";
    total_found += r.found;
    total_exact += r.exact;
    total_wrong += r.wrong_bytes;
  }
  std::cout << "total over " << kRounds << " crashes: " << total_found << " chunks found, "
            << total_exact << " byte-exact, " << total_wrong << " wrong" << std::endl;
  EXPECT_EQ(total_wrong, 0u);
  EXPECT_GT(total_exact, size_t{kRounds}) << "too few chunks survived the crashes";
}

// The acknowledgement rounds: each round offloads fresh documents (seeds
// round * 100 + [0, kDocsPerRound)), so every kill lands among new writes.
constexpr uint64_t kDocsPerRound = 16;

// The default shape of pool, two DRAM regions and one extent, in copies
// mode, with room for every document of every round: nothing is evicted,
// so every document whose Offload Wait() returned must come back after
// SIGKILL, in this round and all earlier ones.
PoolOptions DefaultShapeOptions(const std::string& dir, const std::string& engine) {
  PoolOptions o;
  o.shape = Shape();
  const uint64_t chunk = uint64_t{o.shape.SegmentBytes()} * o.shape.layers;
  const uint64_t all = kRounds * kDocsPerRound * kChunksPerDoc + 8;
  o.devices.push_back(DramOptions("dram0", 12 * chunk, 8.0));
  o.devices.push_back(DramOptions("dram1", 12 * chunk, 8.0));
  o.devices.push_back(ExtentOptions("ssd0", dir + "/ssd0.extent", all * chunk, engine, 2.0));
  return o;
}

// The child of the acknowledgement rounds: offloads documents (never
// removes) and writes each document's seed to `acked_fd` once its Offload
// Wait() returned OK.
[[noreturn]] void RunAckingChild(const PoolOptions& o, uint64_t round, int ready_fd,
                                 int acked_fd) {
  std::mt19937_64 rng(round * 104729 + 3);
  // A slow SSD (48 MiB/s): a round's writes take about as long as the
  // child lives, so kills land in the middle of offloads.
  auto pool = OpenChildPool(o, std::chrono::milliseconds(5 + rng() % 200), 0.047, ready_fd);
  std::deque<std::pair<std::unique_ptr<Doc>, OffloadHandle>> in_flight;
  auto ack_front = [&] {
    auto& [doc, handle] = in_flight.front();
    uint32_t seed = static_cast<uint32_t>(doc->seed);
    if (handle.Wait().ok() && ::write(acked_fd, &seed, sizeof(seed)) != sizeof(seed)) _exit(7);
    in_flight.pop_front();
  };
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < give_up) {
    auto doc = std::make_unique<Doc>(round * 100 + rng() % kDocsPerRound);
    // Read some documents back too, so that copies are promoted and dropped.
    if (rng() % 3 == 0) {
      KvData got(o.shape, kChunksPerDoc);
      auto h = pool->Retrieve(doc->keys, got.View(), {});
      if (h.ok()) (void)h->Wait();
    }
    auto h = pool->Offload(doc->keys, doc->View());
    if (!h.ok()) _exit(6);
    in_flight.emplace_back(std::move(doc), std::move(h).value());
    if (in_flight.size() >= 4) ack_front();
  }
  _exit(0);
}

TEST(Crash, EveryAcknowledgedChunkOfTheDefaultShapeSurvivesSigkill) {
  const std::string engine = UringStatus().ok() ? "uring" : "psync";
  TempDir dir;
  const PoolOptions o = DefaultShapeOptions(dir.path(), engine);
  std::mt19937_64 rng(20261201);
  std::set<uint64_t> acked;  // over all rounds: nothing is ever removed
  size_t total_exact = 0;
  std::cout << "pool: 2 DRAM regions + 1 extent (" << engine << "), copies mode" << std::endl;
  for (int round = 0; round < kRounds; ++round) {
    int ready[2], ack[2];
    ASSERT_EQ(::pipe(ready), 0);
    ASSERT_EQ(::pipe(ack), 0);
    pid_t pid = ::fork();
    if (pid == 0) {
      ::close(ready[0]);
      ::close(ack[0]);
      RunAckingChild(o, uint64_t(round), ready[1], ack[1]);
    }
    ::close(ready[1]);
    ::close(ack[1]);
    pollfd p{ready[0], POLLIN, 0};
    char byte = 0;
    ASSERT_TRUE(::poll(&p, 1, 20000) == 1 && ::read(ready[0], &byte, 1) == 1) << "round " << round;
    std::this_thread::sleep_for(std::chrono::milliseconds(50 + rng() % 351));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "round " << round;
    size_t acked_now = 0;
    uint32_t seeds[1024];
    for (ssize_t got; (got = ::read(ack[0], seeds, sizeof(seeds))) > 0;) {
      for (ssize_t i = 0; i < got / ssize_t(sizeof(uint32_t)); ++i) {
        acked_now += acked.insert(seeds[i]).second ? 1 : 0;
      }
    }
    ::close(ready[0]);
    ::close(ack[0]);

    auto pool = Pool::Open(o);
    ASSERT_TRUE(pool.ok()) << pool.status().ToString();
    size_t missing = 0, exact = 0, wrong = 0;
    for (uint64_t seed : acked) {
      Doc want(seed);
      if ((*pool)->Lookup(want.keys) != kChunksPerDoc) ++missing;
      KvData got(o.shape, kChunksPerDoc);
      RetrieveOutcome out = RetrieveSync(**pool, want.keys, got);
      const size_t valid = out.valid.ok() ? *out.valid : 0;
      ConstKvBuffer g = got.ConstView(), w = want.View();
      for (size_t c = 0; c < valid; ++c) {
        bool same = true;
        for (uint32_t l = 0; l < o.shape.layers; ++l) {
          same &= std::memcmp(g.Segment(c, l), w.Segment(c, l), o.shape.SegmentPayloadBytes()) == 0;
        }
        (same ? exact : wrong) += 1;
      }
    }
    std::cout << "round " << round << ": " << acked_now << " new documents acknowledged, "
              << acked.size() << " in all; " << missing << " incomplete after the crash; "
              << exact << " chunks byte-exact, " << wrong << " wrong" << std::endl;
    EXPECT_EQ(missing, 0u) << "round " << round;
    EXPECT_EQ(wrong, 0u) << "round " << round;
    EXPECT_EQ(exact, acked.size() * kChunksPerDoc) << "round " << round;
    total_exact += exact;
  }
  EXPECT_GT(acked.size(), size_t{kRounds * 4}) << "too few offloads were acknowledged";
}

TEST(Crash, EveryChunkFoundAfterSigkillIsByteExact) {
  const std::string engine = UringStatus().ok() ? "uring" : "psync";
  if (engine != "uring") std::cout << "io_uring unavailable, crashing the psync engine\n";
  TempDir dir;
  RunCrashRounds(CrashPoolOptions(dir.path(), engine), /*verify_in_child=*/false);
}

TEST(Crash, SpdkEveryChunkFoundAfterSigkillIsByteExact) {
  KVP_SKIP_WITHOUT_SPDK();
  TempDir dir;
  const PoolOptions o = CrashPoolOptions(dir.path(), "spdk");
  ASSERT_TRUE(WipeInChild(o));
  RunCrashRounds(o, /*verify_in_child=*/true);
}

}  // namespace
}  // namespace kvpool::testing
