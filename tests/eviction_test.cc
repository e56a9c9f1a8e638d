// Eviction: when DRAM fills up, least-recently-used prefixes lose their tail
// chunks first, usage stays under the high watermark, and counters show it.
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>

#include "pool_helpers.h"

namespace kvpool::testing {
namespace {

constexpr size_t kPrefixChunks = 4;
constexpr uint64_t kSlots = 64;  // 4 prefixes of 4 chunks x 4 layers

// Holds every write batch until Open(): makes "while a write is in flight"
// deterministic without sleeping.
class WriteGate {
 public:
  void Close() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = false;
  }
  void Open() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }
  void WaitOpen() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = true;
};

class GatedQueue final : public IoQueue {
 public:
  GatedQueue(std::unique_ptr<IoQueue> inner, WriteGate* gate)
      : inner_(std::move(inner)), gate_(gate) {}
  void Execute(std::span<SegmentIo* const> ops) override {
    for (const SegmentIo* op : ops) {
      if (op->kind == IoKind::kWrite) gate_->WaitOpen();
    }
    inner_->Execute(ops);
  }

 private:
  std::unique_ptr<IoQueue> inner_;
  WriteGate* gate_;
};

class GatedDevice final : public Device {
 public:
  GatedDevice(std::unique_ptr<Device> inner, WriteGate* gate)
      : Device(inner->options(), inner->geometry()), inner_(std::move(inner)), gate_(gate) {}
  Result<std::unique_ptr<IoQueue>> NewIoQueue() override {
    auto q = inner_->NewIoQueue();
    if (!q.ok()) return q.status();
    return std::unique_ptr<IoQueue>(new GatedQueue(std::move(q).value(), gate_));
  }

 private:
  std::unique_ptr<Device> inner_;
  WriteGate* gate_;
};

class EvictionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    shape_ = *ModelShape::Preset("tiny");  // 4 layers, 32 KiB segments
    PoolOptions o;
    o.shape = shape_;
    o.devices.push_back(DramOptions("dram", kSlots * shape_.SegmentBytes()));
    pool_ = MakePool(o, [this](size_t, std::unique_ptr<Device> d) {
      return std::make_unique<GatedDevice>(std::move(d), &gate_);
    });
    ASSERT_NE(pool_, nullptr);
  }

  struct Prefix {
    std::vector<ChunkKey> keys;
    std::unique_ptr<KvData> data;
  };

  // Offloads a new prefix of kPrefixChunks chunks; returns its index.
  size_t AddPrefix() {
    size_t id = prefixes_.size();
    Prefix p;
    p.keys = MakeKeys(shape_, kPrefixChunks, 1000 + id);
    p.data = std::make_unique<KvData>(shape_, kPrefixChunks, 2000 + id);
    auto stored = OffloadSync(*pool_, p.keys, p.data->ConstView());
    EXPECT_TRUE(stored.ok()) << stored.status().ToString();
    if (stored.ok()) {
      EXPECT_EQ(*stored, kPrefixChunks) << "prefix " << id;
    }
    prefixes_.push_back(std::move(p));
    return id;
  }

  // Cached length of prefix `id` read from the table (no LRU touch). Fails
  // the test if a chunk past the cached length is still resident (a gap).
  size_t CachedLength(size_t id) {
    const auto& keys = prefixes_[id].keys;
    size_t n = 0;
    while (n < keys.size() && pool_->glt().Find(keys[n])) ++n;
    for (size_t c = n; c < keys.size(); ++c) {
      EXPECT_EQ(pool_->glt().Find(keys[c]), nullptr)
          << "prefix " << id << " has chunk " << c << " but not chunk " << n;
    }
    return n;
  }

  double UsedFraction() {
    const DeviceStats d = pool_->Stats().devices[0];
    return double(d.used_bytes) / double(d.capacity_bytes);
  }

  // Retrieves prefix `id` and checks the bytes of what is returned.
  size_t RetrieveAndCheck(size_t id) {
    KvData dst(shape_, kPrefixChunks);
    RetrieveOutcome r = RetrieveSync(*pool_, prefixes_[id].keys, dst);
    EXPECT_TRUE(r.valid.ok());
    EXPECT_TRUE(dst.SameAs(*prefixes_[id].data, *r.valid));
    return *r.valid;
  }

  WriteGate gate_;  // outlives the pool (declared first)
  ModelShape shape_;
  std::unique_ptr<PoolImpl> pool_;
  std::vector<Prefix> prefixes_;
};

TEST_F(EvictionTest, LeastRecentlyUsedPrefixLosesItsTailFirst) {
  for (int i = 0; i < 3; ++i) AddPrefix();  // 48 of 64 slots
  EXPECT_EQ(pool_->Stats().evicted_chunks, 0u);
  EXPECT_EQ(pool_->Lookup(prefixes_[0].keys), kPrefixChunks);  // touch prefix 0
  AddPrefix();  // 64 of 64: above the high watermark (0.95)

  // Prefix 1 is now the least recently used: it shrinks from its tail.
  EXPECT_EQ(CachedLength(0), kPrefixChunks) << "touched prefix stays whole";
  EXPECT_LT(CachedLength(1), kPrefixChunks);
  EXPECT_GT(CachedLength(1), 0u) << "only what the low watermark needs goes";
  EXPECT_EQ(CachedLength(2), kPrefixChunks);
  EXPECT_EQ(CachedLength(3), kPrefixChunks);
  EXPECT_LE(UsedFraction(), pool_->options().high_watermark);
  EXPECT_LE(UsedFraction(), pool_->options().low_watermark);

  PoolStats s = pool_->Stats();
  EXPECT_EQ(s.evicted_chunks, kPrefixChunks - CachedLength(1));
  EXPECT_EQ(s.devices[0].evicted_segments, s.evicted_chunks * shape_.layers);
  EXPECT_EQ(s.chunks, 3 * kPrefixChunks + CachedLength(1));
  EXPECT_EQ(pool_->Lookup(prefixes_[1].keys), CachedLength(1));
  EXPECT_EQ(RetrieveAndCheck(1), CachedLength(1));
}

TEST_F(EvictionTest, ManyOffloadsKeepTheHotPrefixAndStayUnderTheWatermark) {
  const size_t hot = AddPrefix();
  uint64_t evicted_before = 0;
  bool evicted_growth = false;
  for (int round = 0; round < 24; ++round) {
    EXPECT_EQ(pool_->Lookup(prefixes_[hot].keys), kPrefixChunks) << "round " << round;
    AddPrefix();
    EXPECT_LE(UsedFraction(), pool_->options().high_watermark) << "round " << round;

    // Untouched prefixes, oldest first: cached lengths never decrease with
    // recency (older ones are evicted first), and none has a gap.
    size_t previous = 0;
    for (size_t id = hot + 1; id < prefixes_.size(); ++id) {
      size_t len = CachedLength(id);
      EXPECT_GE(len, previous) << "round " << round << ": prefix " << id
                               << " is newer but shorter than an older one";
      previous = len;
    }
    EXPECT_EQ(CachedLength(prefixes_.size() - 1), kPrefixChunks) << "newest stays whole";
    uint64_t evicted = pool_->Stats().evicted_chunks;
    EXPECT_GE(evicted, evicted_before);
    evicted_growth |= evicted > evicted_before;
    evicted_before = evicted;
  }
  EXPECT_TRUE(evicted_growth);
  PoolStats s = pool_->Stats();
  // 25 prefixes of 4 chunks went in; the pool holds at most 60 segments.
  EXPECT_GE(s.evicted_chunks, 25 * kPrefixChunks - kSlots / shape_.layers);
  EXPECT_EQ(s.devices[0].evicted_segments, s.evicted_chunks * shape_.layers);
  EXPECT_EQ(s.offload_rejected_chunks, 0u);
  EXPECT_EQ(RetrieveAndCheck(hot), kPrefixChunks);
  EXPECT_EQ(RetrieveAndCheck(prefixes_.size() - 1), kPrefixChunks);
  EXPECT_EQ(RetrieveAndCheck(hot + 1), CachedLength(hot + 1));
}

TEST_F(EvictionTest, RetrieveTouchesLikeLookup) {
  for (int i = 0; i < 3; ++i) AddPrefix();
  EXPECT_EQ(RetrieveAndCheck(0), kPrefixChunks);  // prefix 0 becomes recent
  AddPrefix();
  EXPECT_EQ(CachedLength(0), kPrefixChunks);
  EXPECT_LT(CachedLength(1), kPrefixChunks);
}

TEST_F(EvictionTest, AnOffloadLargerThanFreeSpaceEvictsForRoom) {
  // Low watermarks off the table: only lack of room forces eviction here.
  PoolOptions o;
  o.shape = shape_;
  o.high_watermark = 1.0;
  o.low_watermark = 0.99;
  o.devices.push_back(DramOptions("dram", kSlots * shape_.SegmentBytes()));
  pool_ = MakePool(o);
  ASSERT_NE(pool_, nullptr);
  for (int i = 0; i < 4; ++i) AddPrefix();  // exactly full
  EXPECT_EQ(pool_->Stats().devices[0].segments, kSlots);
  EXPECT_EQ(pool_->Stats().evicted_chunks, 0u);
  AddPrefix();
  EXPECT_EQ(CachedLength(0), 0u) << "the oldest prefix made room";
  for (size_t id = 1; id < 5; ++id) EXPECT_EQ(CachedLength(id), kPrefixChunks);
  EXPECT_EQ(pool_->Stats().evicted_chunks, kPrefixChunks);
}

TEST_F(EvictionTest, AnOffloadLargerThanTheDeviceStoresWhatFits) {
  // One offload larger than the whole device: what fits is stored, the rest
  // is rejected and counted.
  auto keys = MakeKeys(shape_, 20, 5);
  KvData data(shape_, 20, 6);
  auto stored = OffloadSync(*pool_, keys, data.ConstView());
  ASSERT_TRUE(stored.ok()) << stored.status().ToString();
  EXPECT_LT(*stored, 20u);
  EXPECT_GT(*stored, 0u);
  PoolStats s = pool_->Stats();
  EXPECT_EQ(s.offload_rejected_chunks, 20u - *stored);
  EXPECT_LE(s.devices[0].segments, kSlots);
}

TEST_F(EvictionTest, ChunkRemovedWhileBeingWrittenLeavesItsParentEvictable) {
  const size_t a = AddPrefix();  // chunks a0..a3
  // Extend prefix a by one chunk; remove that chunk while its write is held.
  auto longer = MakeKeys(shape_, kPrefixChunks + 1, 1000 + a);
  ASSERT_EQ(std::vector<ChunkKey>(longer.begin(), longer.begin() + kPrefixChunks),
            prefixes_[a].keys);
  KvData data(shape_, kPrefixChunks + 1, 3000);
  gate_.Close();
  auto h = pool_->Offload(longer, ViewFrom(data, kPrefixChunks));
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(pool_->Remove(std::span(longer).subspan(kPrefixChunks)), 1u);
  gate_.Open();
  ASSERT_TRUE(h->Wait().ok());
  pool_->Flush();
  EXPECT_EQ(pool_->glt().Find(longer[kPrefixChunks]), nullptr);
  EXPECT_EQ(CachedLength(a), kPrefixChunks);  // (no Lookup: it would touch a)
  EXPECT_EQ(pool_->Stats().chunks, kPrefixChunks);

  // Prefix a is the least recently used: filling the pool must shrink it,
  // which needs its tail to be a leaf again.
  for (int i = 0; i < 3; ++i) AddPrefix();
  EXPECT_LT(CachedLength(a), kPrefixChunks) << "a removed child pinned its parent";
  for (size_t id = a + 1; id < prefixes_.size(); ++id) {
    EXPECT_EQ(CachedLength(id), kPrefixChunks) << "prefix " << id;
  }
}

TEST_F(EvictionTest, EvictionNeverTakesThePrefixAnInFlightOffloadExtends) {
  const size_t a = AddPrefix();  // the least recently used prefix
  for (int i = 0; i < 2; ++i) AddPrefix();  // 48 of 64 slots
  // Extend prefix a by one chunk while its write is held at the device.
  auto longer = MakeKeys(shape_, kPrefixChunks + 1, 1000 + a);
  KvData data(shape_, kPrefixChunks + 1, 3000);
  gate_.Close();
  auto h = pool_->Offload(longer, ViewFrom(data, kPrefixChunks));
  ASSERT_TRUE(h.ok());
  // Meanwhile the pool fills (offloads of other prefixes queue behind the
  // gate, so Remove-free pressure comes from placement's eviction).
  std::vector<OffloadHandle> more;
  std::vector<std::unique_ptr<KvData>> keep;
  for (int i = 0; i < 2; ++i) {
    auto keys = MakeKeys(shape_, kPrefixChunks, 5000 + i);
    keep.push_back(std::make_unique<KvData>(shape_, kPrefixChunks, 6000 + i));
    auto m = pool_->Offload(keys, keep.back()->ConstView());
    ASSERT_TRUE(m.ok());
    more.push_back(std::move(m).value());
  }
  gate_.Open();
  ASSERT_TRUE(h->Wait().ok());
  for (auto& m : more) (void)m.Wait();
  pool_->Flush();
  // Whatever was evicted, the new chunk is reachable: its parent (a3) is
  // still there whenever it is.
  if (pool_->glt().Find(longer[kPrefixChunks])) {
    EXPECT_NE(pool_->glt().Find(longer[kPrefixChunks - 1]), nullptr)
        << "eviction took the tail an in-flight offload was extending: the new chunk is orphaned";
    EXPECT_EQ(pool_->Lookup(longer), kPrefixChunks + 1);
  }
}

TEST_F(EvictionTest, ChildCountsSurviveRemoveAndReoffload) {
  const size_t a = AddPrefix();  // a0..a3
  // Remove a middle chunk, then offload the whole prefix again: a1 comes
  // back as a new record while a2 and a3 stayed.
  EXPECT_EQ(pool_->Remove(std::span(prefixes_[a].keys).subspan(1, 1)), 1u);
  auto again = OffloadSync(*pool_, prefixes_[a].keys, prefixes_[a].data->ConstView());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, 1u);
  // Touch a2 and a3 only (a Lookup from a2 on): the new a1 is now older
  // than its own children. Then fill the pool: a must still lose its tail
  // first; a1, or a0, going before a2 and a3 would leave a gap.
  EXPECT_EQ(pool_->Lookup(std::span(prefixes_[a].keys).subspan(2)), kPrefixChunks - 2);
  for (int i = 0; i < 3; ++i) AddPrefix();
  size_t n = CachedLength(a);  // also fails on a gap
  EXPECT_LT(n, kPrefixChunks);
}

}  // namespace
}  // namespace kvpool::testing
