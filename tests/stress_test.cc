// Many threads offload, look up, retrieve and remove overlapping prefixes
// while the capacity forces eviction. Every byte a retrieval reports valid
// must be right, and nothing may leak or crash. Run it under ThreadSanitizer.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <iostream>
#include <random>
#include <thread>

#include "pool_helpers.h"
#include "util/clock.h"

namespace kvpool::testing {
namespace {

constexpr int kThreads = 6;
constexpr double kSeconds = 3.0;
constexpr size_t kDocs = 24;
constexpr size_t kFamilies = 4;  // documents of a family share their first chunks

ModelShape Shape() {
  ModelShape s = *ModelShape::Preset("tiny");
  s.chunk_tokens = 16;  // 2 x 16 x 2 x 16 x 2 B = 2 KiB segments
  return s;
}

// KV bytes are a function of the chunk key, so documents that share a prefix
// also share its bytes, as real KV would.
class Doc {
 public:
  Doc(const ModelShape& shape, const std::vector<int32_t>& tokens)
      : segment_(shape.SegmentPayloadBytes()) {
    keys = ChainChunkKeys(Namespace::Make(shape.Fingerprint(), ""), tokens, shape.chunk_tokens);
    layers_.resize(shape.layers);
    for (uint32_t l = 0; l < shape.layers; ++l) {
      layers_[l].resize(keys.size() * segment_);
      for (size_t c = 0; c < keys.size(); ++c) {
        std::mt19937_64 rng(keys[c].lo ^ (keys[c].hi * 31) ^ l);
        for (size_t i = 0; i < segment_; i += 8) {
          uint64_t v = rng();
          std::memcpy(&layers_[l][c * segment_ + i], &v, 8);
        }
      }
    }
  }

  ConstKvBuffer From(size_t first) const {
    ConstKvBuffer b;
    for (const auto& l : layers_) b.layer_base.push_back(l.data() + first * segment_);
    b.chunk_stride = segment_;
    b.first_chunk = first;
    return b;
  }

  // Index of the first chunk in [0, n) whose bytes in `dst` differ, or n.
  size_t FirstMismatch(const std::vector<std::vector<std::byte>>& dst, size_t n) const {
    for (size_t c = 0; c < n; ++c) {
      for (size_t l = 0; l < layers_.size(); ++l) {
        if (std::memcmp(dst[l].data() + c * segment_, layers_[l].data() + c * segment_, segment_) !=
            0) {
          return c;
        }
      }
    }
    return n;
  }

  std::vector<ChunkKey> keys;

 private:
  size_t segment_;
  std::vector<std::vector<std::byte>> layers_;
};

std::vector<Doc> MakeDocs(const ModelShape& shape) {
  std::vector<std::vector<int32_t>> family_prefix;
  for (size_t f = 0; f < kFamilies; ++f) {
    family_prefix.push_back(MakeTokens(3 * shape.chunk_tokens, 500 + f));
  }
  std::vector<Doc> docs;
  for (size_t d = 0; d < kDocs; ++d) {
    std::vector<int32_t> tokens = family_prefix[d % kFamilies];
    std::vector<int32_t> own = MakeTokens((4 + d % 7) * shape.chunk_tokens, 900 + d);
    tokens.insert(tokens.end(), own.begin(), own.end());
    docs.emplace_back(shape, tokens);
  }
  return docs;
}

struct Totals {
  std::atomic<uint64_t> offloads{0}, retrieves{0}, lookups{0}, removes{0};
  std::atomic<uint64_t> chunks_verified{0}, wrong_bytes{0}, bad_status{0};
};

void Worker(int id, PoolImpl& pool, const std::vector<Doc>& docs, const ModelShape& shape,
            Clock::time_point deadline, Totals& totals) {
  std::mt19937_64 rng(id * 7919 + 1);
  const size_t segment = shape.SegmentPayloadBytes();
  size_t max_chunks = 0;
  for (const Doc& d : docs) max_chunks = std::max(max_chunks, d.keys.size());
  std::vector<std::vector<std::byte>> dst(shape.layers,
                                          std::vector<std::byte>(max_chunks * segment));
  while (Clock::now() < deadline) {
    const Doc& doc = docs[rng() % docs.size()];
    const size_t n = doc.keys.size();
    switch (rng() % 10) {
      case 0:
      case 1:
      case 2: {  // offload the whole document or its tail
        size_t first = rng() % 3 == 0 ? rng() % n : 0;
        auto h = pool.Offload(doc.keys, doc.From(first));
        if (!h.ok()) {
          ++totals.bad_status;
          break;
        }
        auto r = h->Wait();
        if (!r.ok() && r.status().code() != StatusCode::kNoSpace) ++totals.bad_status;
        ++totals.offloads;
        break;
      }
      case 3:
      case 4:
      case 5:
      case 6: {  // retrieve and verify every chunk reported valid
        // Poison the destination so stale bytes of an earlier read never pass.
        for (auto& l : dst) std::memset(l.data(), 0xee, n * segment);
        KvBuffer out;
        for (auto& l : dst) out.layer_base.push_back(l.data());
        out.chunk_stride = segment;
        uint32_t next_layer = 0;
        size_t last_valid = n;
        bool order_ok = true;
        auto h = pool.Retrieve(doc.keys, out, [&](uint32_t layer, size_t valid) {
          order_ok &= layer == next_layer++ && valid <= last_valid;
          last_valid = valid;
        });
        if (!h.ok()) {
          ++totals.bad_status;
          break;
        }
        auto valid = h->Wait();
        if (!valid.ok() || !order_ok || next_layer != shape.layers) {
          ++totals.bad_status;
          break;
        }
        if (doc.FirstMismatch(dst, *valid) != *valid) ++totals.wrong_bytes;
        totals.chunks_verified += *valid;
        ++totals.retrieves;
        break;
      }
      case 7:
      case 8: {
        if (pool.Lookup(doc.keys) > n) ++totals.bad_status;
        ++totals.lookups;
        break;
      }
      case 9: {  // drop a tail (sometimes a shared chunk of the family prefix)
        size_t from = rng() % n;
        pool.Remove(std::span(doc.keys).subspan(from));
        ++totals.removes;
        if (rng() % 8 == 0) (void)pool.Stats();
        break;
      }
    }
  }
}

TEST(Stress, ConcurrentOffloadRetrieveRemoveUnderEviction) {
  const ModelShape shape = Shape();
  const std::vector<Doc> docs = MakeDocs(shape);
  size_t total_segments = 0;
  for (const Doc& d : docs) total_segments += d.keys.size() * shape.layers;

  TempDir dir;
  PoolOptions o;
  o.shape = shape;
  const uint64_t slot = shape.SegmentBytes();
  // About a third of all segments fit: eviction runs all the time.
  o.devices.push_back(DramOptions("dram0", 48 * slot, 1.0));
  o.devices.push_back(DramOptions("dram1", 64 * slot, 2.0));
  DeviceOptions files = FileOptions("files", dir.path() + "/files", 48 * slot, 1.0);
  files.io_threads = 2;
  o.devices.push_back(files);
  o.max_pending_writes = 64;  // exercise write backpressure
  auto pool = MakePool(o);
  ASSERT_NE(pool, nullptr);
  ASSERT_GT(total_segments, 2 * (48 + 64 + 48));

  Totals totals;
  const Clock::time_point deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                        std::chrono::duration<double>(kSeconds));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back(Worker, t, std::ref(*pool), std::cref(docs), std::cref(shape), deadline,
                         std::ref(totals));
  }
  for (auto& t : threads) t.join();
  pool->Flush();

  std::cout << "offloads " << totals.offloads << ", retrieves " << totals.retrieves
            << " (chunks verified " << totals.chunks_verified << "), lookups " << totals.lookups
            << ", removes " << totals.removes << "\n";
  EXPECT_EQ(totals.wrong_bytes.load(), 0u);
  EXPECT_EQ(totals.bad_status.load(), 0u);
  EXPECT_GT(totals.offloads.load(), 0u);
  EXPECT_GT(totals.retrieves.load(), 0u);
  EXPECT_GT(totals.chunks_verified.load(), 0u) << "some retrievals must have found data";

  PoolStats s = pool->Stats();
  EXPECT_GT(s.evicted_chunks, 0u);
  for (const DeviceStats& d : s.devices) {
    EXPECT_LE(d.used_bytes, d.capacity_bytes) << d.name;
    EXPECT_EQ(d.errors, 0u) << d.name;
  }
  // Everything still resident is reachable by key: removing every key of
  // every document frees every slot (no leaked or orphaned segment). A slot
  // is freed with the last reference to its chunk, which a device thread
  // may still drop just after the request that used it completed: wait for
  // that (a leak never gets there).
  for (const Doc& d : docs) pool->Remove(d.keys);
  auto used = [&] {
    uint64_t sum = 0;
    for (const DeviceStats& d : pool->Stats().devices) sum += d.used_bytes;
    return sum;
  };
  for (int i = 0; i < 500 && used() != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  s = pool->Stats();
  EXPECT_EQ(s.chunks, 0u);
  EXPECT_EQ(s.segments, 0u);
  for (const DeviceStats& d : s.devices) EXPECT_EQ(d.used_bytes, 0u) << d.name;
}

}  // namespace
}  // namespace kvpool::testing
