// The C API (kvpool/c.h) on an in-process pool opened from TOML: a DRAM
// region and an extent device in a temp dir.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <kvpool/c.h>
#include <kvpool/kvpool.h>

#include "test_util.h"

namespace kvpool::testing {
namespace {

constexpr uint32_t kLayers = 4;
constexpr uint32_t kChunkTokens = 16;
// 2 (K, V) x 16 tokens x 2 heads x 64 dims x 2 bytes.
constexpr size_t kSegment = 8192;

std::string WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
  return path;
}

std::string PoolToml(const TempDir& dir) {
  return R"([model]
layers = 4
kv_heads = 2
head_dim = 64
dtype_bytes = 2
chunk_tokens = 16

[[device]]
name = "dram0"
kind = "dram"
capacity = "4MiB"
bandwidth_gibps = 4.0

[[device]]
name = "ssd0"
kind = "extent"
path = ")" +
         dir.path() + R"(/pool.extent"
capacity = "32MiB"
engine = "psync"
bandwidth_gibps = 2.0
)";
}

// Layer-major KV for `chunks` chunks in caller memory, one array per layer.
struct HostKv {
  HostKv(size_t chunks, uint8_t seed) : layers(kLayers) {
    for (uint32_t l = 0; l < kLayers; ++l) {
      layers[l].resize(chunks * kSegment);
      for (size_t i = 0; i < layers[l].size(); ++i) {
        layers[l][i] = static_cast<uint8_t>(seed == 0 ? 0 : (i * 31 + l * 7 + seed) % 251);
      }
      base.push_back(layers[l].data());
    }
  }
  kvpool_kv_buffer View(size_t first_chunk = 0) {
    return kvpool_kv_buffer{base.data(), kLayers, kSegment, first_chunk};
  }
  std::vector<std::vector<uint8_t>> layers;
  std::vector<void*> base;
};

class CApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = WriteFile(dir_.path() + "/pool.toml", PoolToml(dir_));
    ASSERT_EQ(kvpool_open(config_.c_str(), nullptr, &pool_), KVPOOL_OK) << kvpool_last_error();
    ASSERT_NE(pool_, nullptr);
  }
  void TearDown() override { kvpool_close(pool_); }

  // The pool's namespace (no tenant salt).
  kvpool_chunk_key Ns() {
    kvpool_shape shape{};
    EXPECT_EQ(kvpool_get_shape(pool_, &shape), KVPOOL_OK);
    return kvpool_namespace(shape.fingerprint, "");
  }

  // Tokens [begin, end) of a deterministic prompt.
  static std::vector<int32_t> Tokens(size_t begin, size_t end, int32_t seed) {
    std::vector<int32_t> tokens;
    for (size_t i = begin; i < end; ++i) tokens.push_back(static_cast<int32_t>(i) * 3 + seed);
    return tokens;
  }

  // Keys of `chunks` chunks of deterministic tokens in the pool's namespace.
  std::vector<kvpool_chunk_key> Keys(size_t chunks, int32_t seed = 1) {
    const std::vector<int32_t> tokens = Tokens(0, chunks * kChunkTokens, seed);
    std::vector<kvpool_chunk_key> keys(chunks);
    EXPECT_EQ(kvpool_chain_keys(Ns(), tokens.data(), tokens.size(), kChunkTokens, keys.data(),
                                keys.size()),
              chunks);
    return keys;
  }

  // The key of the partial chunk of `n` tokens after `full` full chunks of
  // the prompt of Keys(full, seed).
  kvpool_chunk_key PartialKey(size_t full, size_t n, int32_t seed = 1) {
    const std::vector<int32_t> tokens = Tokens(full * kChunkTokens, full * kChunkTokens + n, seed);
    const kvpool_chunk_key parent = full == 0 ? kvpool_chunk_key{0, 0} : Keys(full, seed).back();
    return kvpool_partial_chunk_key(Ns(), parent, tokens.data(), tokens.size());
  }

  size_t FindChild(const std::vector<kvpool_chunk_key>& prefix,
                   const std::vector<kvpool_chunk_key>& candidates) {
    size_t index = SIZE_MAX;
    EXPECT_EQ(kvpool_find_child(pool_, prefix.data(), prefix.size(), candidates.data(),
                                candidates.size(), &index),
              KVPOOL_OK)
        << kvpool_last_error();
    return index;
  }

  void Offload(const std::vector<kvpool_chunk_key>& keys, HostKv& kv, size_t expect_stored) {
    const kvpool_kv_buffer src = kv.View();
    size_t stored = 0;
    ASSERT_EQ(kvpool_offload(pool_, keys.data(), keys.size(), &src, &stored), KVPOOL_OK)
        << kvpool_last_error();
    EXPECT_EQ(stored, expect_stored);
  }

  size_t Lookup(const std::vector<kvpool_chunk_key>& keys) {
    size_t present = 0;
    EXPECT_EQ(kvpool_lookup(pool_, keys.data(), keys.size(), &present), KVPOOL_OK)
        << kvpool_last_error();
    return present;
  }

  TempDir dir_;
  std::string config_;
  kvpool_pool* pool_ = nullptr;
};

bool Contains(const char* text, const std::string& part) {
  return std::string(text).find(part) != std::string::npos;
}

TEST(CApiOpen, MissingFileNamesThePath) {
  TempDir dir;
  const std::string path = dir.path() + "/absent/pool.toml";
  // A non-NULL value that a failed open must clear.
  kvpool_pool* pool = reinterpret_cast<kvpool_pool*>(&dir);
  EXPECT_EQ(kvpool_open(path.c_str(), nullptr, &pool), KVPOOL_INVALID_ARGUMENT);
  EXPECT_EQ(pool, nullptr);
  EXPECT_TRUE(Contains(kvpool_last_error(), path)) << kvpool_last_error();
}

TEST(CApiOpen, BadTargets) {
  kvpool_pool* pool = nullptr;
  EXPECT_EQ(kvpool_open("", nullptr, &pool), KVPOOL_INVALID_ARGUMENT);
  EXPECT_TRUE(Contains(kvpool_last_error(), "target")) << kvpool_last_error();
  EXPECT_EQ(kvpool_open(nullptr, nullptr, &pool), KVPOOL_INVALID_ARGUMENT);
  EXPECT_TRUE(Contains(kvpool_last_error(), "target is NULL")) << kvpool_last_error();
  EXPECT_EQ(kvpool_open("pool.toml", nullptr, nullptr), KVPOOL_INVALID_ARGUMENT);
  EXPECT_TRUE(Contains(kvpool_last_error(), "out is NULL")) << kvpool_last_error();

  // No daemon at this address (or no client built in): an error, never a pool.
  TempDir dir;
  const std::string address = "unix:" + dir.path() + "/no-daemon.sock";
  kvpool_params params = kvpool_default_params();
  params.timeout_ms = 200;
  EXPECT_NE(kvpool_open(address.c_str(), &params, &pool), KVPOOL_OK);
  EXPECT_EQ(pool, nullptr);
  EXPECT_STRNE(kvpool_last_error(), "");
}

TEST(CApiOpen, BadConfigNamesTheField) {
  TempDir dir;
  const std::string path = WriteFile(dir.path() + "/bad.toml",
                                     "[model]\npreset = \"tiny\"\n\n[[device]]\nkind = "
                                     "\"dram\"\ncapacity = \"4MiB\"\nbogus = 1\n");
  kvpool_pool* pool = nullptr;
  EXPECT_EQ(kvpool_open(path.c_str(), nullptr, &pool), KVPOOL_INVALID_ARGUMENT);
  EXPECT_TRUE(Contains(kvpool_last_error(), "bogus")) << kvpool_last_error();
}

TEST(CApiOpen, DefaultParams) {
  const kvpool_params p = kvpool_default_params();
  EXPECT_EQ(p.tenant, nullptr);
  EXPECT_EQ(p.shared_bytes, 0u);
  EXPECT_EQ(p.timeout_ms, 0u);
  EXPECT_TRUE(p.reconnect);
  EXPECT_EQ(p.region_pages, KVPOOL_REGION_TRANSPARENT);
}

TEST(CApiOpen, AnUnknownRegionPagesIsRefusedByName) {
  TempDir dir;
  const std::string address = "unix:" + dir.path() + "/no-daemon.sock";
  kvpool_params params = kvpool_default_params();
  params.region_pages = static_cast<kvpool_region_pages>(3);  // no such value
  kvpool_pool* pool = nullptr;
  EXPECT_EQ(kvpool_open(address.c_str(), &params, &pool), KVPOOL_INVALID_ARGUMENT);
  EXPECT_EQ(pool, nullptr);
  EXPECT_TRUE(Contains(kvpool_last_error(), "region_pages: 3")) << kvpool_last_error();
}

TEST(CApiStatus, NamesAndPerThreadLastError) {
  EXPECT_STREQ(kvpool_status_name(KVPOOL_OK), "ok");
  EXPECT_STREQ(kvpool_status_name(KVPOOL_INVALID_ARGUMENT), "invalid argument");
  EXPECT_STREQ(kvpool_status_name(KVPOOL_ABORTED), "aborted");
  EXPECT_STREQ(kvpool_status_name(static_cast<kvpool_status>(99)), "unknown");

  EXPECT_EQ(kvpool_flush(nullptr), KVPOOL_INVALID_ARGUMENT);
  const std::string mine = kvpool_last_error();
  EXPECT_EQ(mine, "invalid argument: pool is NULL");
  std::string theirs;
  std::thread([&] {
    theirs = kvpool_last_error();
    EXPECT_EQ(kvpool_get_shape(nullptr, nullptr), KVPOOL_INVALID_ARGUMENT);
  }).join();
  EXPECT_EQ(theirs, "");
  EXPECT_EQ(kvpool_last_error(), mine);
}

TEST_F(CApiTest, Shape) {
  kvpool_shape shape{};
  ASSERT_EQ(kvpool_get_shape(pool_, &shape), KVPOOL_OK);
  EXPECT_EQ(shape.layers, kLayers);
  EXPECT_EQ(shape.kv_heads, 2u);
  EXPECT_EQ(shape.head_dim, 64u);
  EXPECT_EQ(shape.dtype_bytes, 2u);
  EXPECT_EQ(shape.chunk_tokens, kChunkTokens);
  EXPECT_EQ(shape.segment_payload_bytes, kSegment);
  auto options = LoadPoolOptions(config_);
  ASSERT_TRUE(options.ok()) << options.status().ToString();
  EXPECT_EQ(shape.fingerprint, options->shape.Fingerprint());
}

TEST(CApiKeys, SameAsTheCppApi) {
  const uint64_t fingerprint = 0x1234abcdull;
  const kvpool_chunk_key ns = kvpool_namespace(fingerprint, "tenant-a");
  const Namespace cpp_ns = Namespace::Make(fingerprint, "tenant-a");
  EXPECT_EQ(ns.hi, cpp_ns.id.hi);
  EXPECT_EQ(ns.lo, cpp_ns.id.lo);
  const kvpool_chunk_key plain = kvpool_namespace(fingerprint, nullptr);
  const kvpool_chunk_key empty = kvpool_namespace(fingerprint, "");
  EXPECT_EQ(plain.hi, empty.hi);
  EXPECT_EQ(plain.lo, empty.lo);

  std::vector<int32_t> tokens(5 * kChunkTokens + 3);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>(i * 7);
  const std::vector<ChunkKey> expected = ChainChunkKeys(cpp_ns, tokens, kChunkTokens);
  ASSERT_EQ(expected.size(), 5u);

  std::vector<kvpool_chunk_key> keys(5);
  EXPECT_EQ(kvpool_chain_keys(ns, tokens.data(), tokens.size(), kChunkTokens, keys.data(), 5), 5u);
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(keys[i].hi, expected[i].hi) << i;
    EXPECT_EQ(keys[i].lo, expected[i].lo) << i;
  }
  // Fewer slots than chunks: writes only max_keys, still counts every chunk.
  std::vector<kvpool_chunk_key> two(3, kvpool_chunk_key{7, 7});
  EXPECT_EQ(kvpool_chain_keys(ns, tokens.data(), tokens.size(), kChunkTokens, two.data(), 2), 5u);
  EXPECT_EQ(two[1].lo, expected[1].lo);
  EXPECT_EQ(two[2].hi, 7u);
  EXPECT_EQ(kvpool_chain_keys(ns, tokens.data(), tokens.size(), kChunkTokens, nullptr, 0), 5u);

  EXPECT_EQ(kvpool_chain_keys(ns, tokens.data(), tokens.size(), 0, keys.data(), 5), 0u);
  EXPECT_TRUE(Contains(kvpool_last_error(), "chunk_tokens")) << kvpool_last_error();
  EXPECT_EQ(kvpool_chain_keys(ns, nullptr, 16, kChunkTokens, keys.data(), 5), 0u);
  EXPECT_TRUE(Contains(kvpool_last_error(), "tokens is NULL")) << kvpool_last_error();
  EXPECT_EQ(kvpool_chain_keys(ns, tokens.data(), tokens.size(), kChunkTokens, nullptr, 5), 0u);
  EXPECT_TRUE(Contains(kvpool_last_error(), "keys is NULL")) << kvpool_last_error();
}

bool SameKey(const kvpool_chunk_key& a, const kvpool_chunk_key& b) {
  return a.hi == b.hi && a.lo == b.lo;
}

TEST(CApiKeys, PartialChunkKeySameAsTheCppApi) {
  const uint64_t fingerprint = 0x1234abcdull;
  const kvpool_chunk_key ns = kvpool_namespace(fingerprint, "tenant-a");
  const Namespace cpp_ns = Namespace::Make(fingerprint, "tenant-a");
  std::vector<int32_t> tokens(2 * kChunkTokens);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>(i * 7);
  const std::vector<ChunkKey> full = ChainChunkKeys(cpp_ns, tokens, kChunkTokens);
  ASSERT_EQ(full.size(), 2u);
  const kvpool_chunk_key parent{full[0].hi, full[0].lo};
  const kvpool_chunk_key zero{0, 0};
  const int32_t* second = tokens.data() + kChunkTokens;

  for (size_t n = 1; n < kChunkTokens; ++n) {
    const ChunkKey expected = PartialChunkKey(cpp_ns, full[0], {second, n});
    const kvpool_chunk_key key = kvpool_partial_chunk_key(ns, parent, second, n);
    EXPECT_EQ(key.hi, expected.hi) << n;
    EXPECT_EQ(key.lo, expected.lo) << n;
    const ChunkKey at_start = PartialChunkKey(cpp_ns, ChunkKey{}, {tokens.data(), n});
    const kvpool_chunk_key start = kvpool_partial_chunk_key(ns, zero, tokens.data(), n);
    EXPECT_EQ(start.hi, at_start.hi) << n;
    EXPECT_EQ(start.lo, at_start.lo) << n;
    EXPECT_FALSE(SameKey(key, kvpool_partial_chunk_key(ns, parent, second, n + 1)))
        << "lengths " << n << " and " << n + 1 << " share a key";
    EXPECT_FALSE(SameKey(key, start)) << "the parent is hashed";
  }
  // A whole chunk's tokens as a partial chunk: never the full chunk's key.
  const kvpool_chunk_key as_partial = kvpool_partial_chunk_key(ns, parent, second, kChunkTokens);
  EXPECT_FALSE(SameKey(as_partial, kvpool_chunk_key{full[1].hi, full[1].lo}));
  EXPECT_FALSE(SameKey(kvpool_partial_chunk_key(ns, zero, tokens.data(), kChunkTokens),
                       kvpool_chunk_key{full[0].hi, full[0].lo}));
  // Another namespace gives another key.
  const kvpool_chunk_key other_ns = kvpool_namespace(fingerprint, "tenant-b");
  EXPECT_FALSE(SameKey(kvpool_partial_chunk_key(other_ns, parent, second, 5),
                       kvpool_partial_chunk_key(ns, parent, second, 5)));

  // Bad input: the zero key and a message naming the argument.
  EXPECT_TRUE(SameKey(kvpool_partial_chunk_key(ns, parent, second, 0), zero));
  EXPECT_TRUE(Contains(kvpool_last_error(), "n_tokens is 0")) << kvpool_last_error();
  EXPECT_TRUE(SameKey(kvpool_partial_chunk_key(ns, parent, nullptr, 3), zero));
  EXPECT_TRUE(Contains(kvpool_last_error(), "tokens is NULL")) << kvpool_last_error();
  EXPECT_TRUE(SameKey(kvpool_partial_chunk_key(ns, parent, nullptr, 0), zero));
  EXPECT_TRUE(Contains(kvpool_last_error(), "n_tokens is 0")) << kvpool_last_error();
}

TEST_F(CApiTest, FindChildFindsAnOffloadedPartialChunk) {
  // Three full chunks, then a partial chunk of 5 tokens stored as the leaf of
  // their chain (as the llama.cpp connector stores one).
  const std::vector<kvpool_chunk_key> full = Keys(3);
  HostKv src(3, 5);
  Offload(full, src, 3);
  std::vector<kvpool_chunk_key> chain = full;
  chain.push_back(PartialKey(3, 5));
  HostKv partial(1, 11);
  const kvpool_kv_buffer leaf = partial.View(3);
  size_t stored = 0;
  ASSERT_EQ(kvpool_offload(pool_, chain.data(), chain.size(), &leaf, &stored), KVPOOL_OK)
      << kvpool_last_error();
  EXPECT_EQ(stored, 1u);

  // The candidates the prompt could continue with, longest first.
  std::vector<kvpool_chunk_key> candidates;
  for (size_t n = kChunkTokens - 1; n > 0; --n) candidates.push_back(PartialKey(3, n));
  EXPECT_EQ(FindChild(full, candidates), kChunkTokens - 1 - 5);
  EXPECT_EQ(FindChild(full, {candidates.begin() + 10, candidates.end()}), 0u);

  // Absent: other lengths only, another parent, no candidates.
  const std::vector<kvpool_chunk_key> shorter(candidates.begin() + 11, candidates.end());
  EXPECT_EQ(FindChild(full, shorter), shorter.size());
  EXPECT_EQ(FindChild({full.begin(), full.begin() + 2}, candidates), candidates.size());
  EXPECT_EQ(FindChild({}, candidates), candidates.size());
  EXPECT_EQ(FindChild(full, {}), 0u);
  size_t index = SIZE_MAX;
  EXPECT_EQ(kvpool_find_child(pool_, full.data(), full.size(), nullptr, 0, &index), KVPOOL_OK);
  EXPECT_EQ(index, 0u);

  // The partial chunk found is read back as the leaf of its chain.
  HostKv dst(1, 0);
  const kvpool_kv_buffer into = dst.View(3);
  size_t n = 0;
  ASSERT_EQ(kvpool_retrieve(pool_, chain.data(), chain.size(), &into, &n), KVPOOL_OK)
      << kvpool_last_error();
  EXPECT_EQ(n, 4u);
  EXPECT_EQ(dst.layers, partial.layers);

  // Counts as one lookup.
  ASSERT_EQ(kvpool_flush(pool_), KVPOOL_OK);
  kvpool_stats before{};
  kvpool_stats after{};
  ASSERT_EQ(kvpool_get_stats(pool_, &before), KVPOOL_OK);
  EXPECT_EQ(FindChild(full, candidates), 10u);
  ASSERT_EQ(kvpool_get_stats(pool_, &after), KVPOOL_OK);
  EXPECT_EQ(after.lookups, before.lookups + 1);
  EXPECT_EQ(after.hit_chunks, before.hit_chunks + 1);
}

TEST_F(CApiTest, FindChildAtThePromptStart) {
  // A prompt shorter than a chunk: its partial chunk has no parent.
  const std::vector<kvpool_chunk_key> chain = {PartialKey(0, 7, 4)};
  HostKv src(1, 2);
  Offload(chain, src, 1);
  const std::vector<kvpool_chunk_key> candidates = {PartialKey(0, 8, 4), PartialKey(0, 7, 4)};
  size_t index = SIZE_MAX;
  ASSERT_EQ(kvpool_find_child(pool_, nullptr, 0, candidates.data(), candidates.size(), &index),
            KVPOOL_OK)
      << kvpool_last_error();
  EXPECT_EQ(index, 1u);
  EXPECT_EQ(FindChild(Keys(1, 4), candidates), candidates.size()) << "not a child of chunk 0";
  EXPECT_EQ(Lookup(chain), 1u);
}

TEST_F(CApiTest, OffloadLookupRetrieveRoundTrip) {
  const std::vector<kvpool_chunk_key> keys = Keys(6);
  HostKv src(6, 5);
  EXPECT_EQ(Lookup(keys), 0u);
  Offload(keys, src, 6);
  EXPECT_EQ(Lookup(keys), 6u);
  Offload(keys, src, 0);  // already present

  HostKv dst(6, 0);
  const kvpool_kv_buffer view = dst.View();
  size_t n = 0;
  ASSERT_EQ(kvpool_retrieve(pool_, keys.data(), keys.size(), &view, &n), KVPOOL_OK)
      << kvpool_last_error();
  EXPECT_EQ(n, 6u);
  EXPECT_EQ(dst.layers, src.layers);

  // Chunks the caller already holds are skipped and still counted.
  HostKv tail(6, 0);
  const kvpool_kv_buffer from2 = tail.View(2);
  ASSERT_EQ(kvpool_retrieve(pool_, keys.data(), keys.size(), &from2, &n), KVPOOL_OK);
  EXPECT_EQ(n, 6u);
  for (uint32_t l = 0; l < kLayers; ++l) {
    EXPECT_EQ(std::memcmp(tail.layers[l].data(), src.layers[l].data() + 2 * kSegment, 4 * kSegment),
              0)
        << "layer " << l;
  }
}

struct LayerLog {
  std::mutex mu;
  std::vector<std::pair<uint32_t, size_t>> calls;
};

void RecordLayer(void* user_data, uint32_t layer, size_t valid_chunks) {
  auto* log = static_cast<LayerLog*>(user_data);
  std::lock_guard<std::mutex> lock(log->mu);
  log->calls.emplace_back(layer, valid_chunks);
}

TEST_F(CApiTest, AsyncRetrieveReportsLayersInOrder) {
  const std::vector<kvpool_chunk_key> keys = Keys(5);
  HostKv src(5, 9);
  Offload(keys, src, 5);

  HostKv dst(5, 0);
  const kvpool_kv_buffer view = dst.View();
  LayerLog log;
  kvpool_request* request = nullptr;
  ASSERT_EQ(
      kvpool_retrieve_async(pool_, keys.data(), keys.size(), &view, RecordLayer, &log, &request),
      KVPOOL_OK)
      << kvpool_last_error();
  ASSERT_NE(request, nullptr);
  size_t n = 0;
  ASSERT_EQ(kvpool_request_wait(request, &n), KVPOOL_OK) << kvpool_last_error();
  EXPECT_EQ(n, 5u);
  EXPECT_EQ(dst.layers, src.layers);

  std::lock_guard<std::mutex> lock(log.mu);
  ASSERT_EQ(log.calls.size(), kLayers);
  for (uint32_t l = 0; l < kLayers; ++l) {
    EXPECT_EQ(log.calls[l].first, l);
    if (l > 0) {
      EXPECT_LE(log.calls[l].second, log.calls[l - 1].second);
    }
  }
  EXPECT_EQ(log.calls.back().second, n);

  // Without a callback, and without a count.
  ASSERT_EQ(
      kvpool_retrieve_async(pool_, keys.data(), keys.size(), &view, nullptr, nullptr, &request),
      KVPOOL_OK);
  EXPECT_EQ(kvpool_request_wait(request, nullptr), KVPOOL_OK);
}

TEST_F(CApiTest, RemoveDropsTheTail) {
  const std::vector<kvpool_chunk_key> keys = Keys(6);
  HostKv src(6, 3);
  Offload(keys, src, 6);
  size_t removed = 0;
  ASSERT_EQ(kvpool_remove(pool_, keys.data() + 3, 3, &removed), KVPOOL_OK);
  EXPECT_EQ(removed, 3u);
  EXPECT_EQ(Lookup(keys), 3u);
  EXPECT_EQ(kvpool_remove(pool_, keys.data() + 3, 3, nullptr), KVPOOL_OK);
  ASSERT_EQ(kvpool_remove(pool_, keys.data(), 1, &removed), KVPOOL_OK);
  EXPECT_EQ(removed, 1u);
  EXPECT_EQ(Lookup(keys), 0u);
  EXPECT_EQ(kvpool_flush(pool_), KVPOOL_OK);
}

TEST_F(CApiTest, Stats) {
  const std::vector<kvpool_chunk_key> keys = Keys(4);
  HostKv src(4, 1);
  Offload(keys, src, 4);
  EXPECT_EQ(Lookup(keys), 4u);
  // Counters of a request are settled once the pool has no request in flight.
  ASSERT_EQ(kvpool_flush(pool_), KVPOOL_OK);

  kvpool_stats stats{};
  ASSERT_EQ(kvpool_get_stats(pool_, &stats), KVPOOL_OK);
  EXPECT_EQ(stats.chunks, 4u);
  EXPECT_EQ(stats.segments, 4u * kLayers);
  EXPECT_EQ(stats.offloaded_chunks, 4u);
  EXPECT_GE(stats.lookups, 1u);
  EXPECT_EQ(stats.n_devices, 2u);
  EXPECT_GT(stats.capacity_bytes, 4u << 20);
  EXPECT_GT(stats.used_bytes, 0u);

  char* text = nullptr;
  ASSERT_EQ(kvpool_stats_json(pool_, &text), KVPOOL_OK) << kvpool_last_error();
  ASSERT_NE(text, nullptr);
  const nlohmann::json j = nlohmann::json::parse(text);
  kvpool_free_string(text);
  EXPECT_EQ(j.at("chunks").get<uint64_t>(), 4u);
  EXPECT_EQ(j.at("offloaded_chunks").get<uint64_t>(), 4u);
  ASSERT_EQ(j.at("devices").size(), 2u);
  uint64_t capacity = 0;
  uint64_t used = 0;
  for (const auto& d : j.at("devices")) {
    capacity += d.at("capacity_bytes").get<uint64_t>();
    used += d.at("used_bytes").get<uint64_t>();
    for (const char* field : {"kind", "role", "bandwidth_gibps", "segments", "bytes_written"}) {
      EXPECT_TRUE(d.contains(field)) << field;
    }
  }
  EXPECT_EQ(j.at("devices")[0].at("name"), "dram0");
  EXPECT_EQ(j.at("devices")[1].at("name"), "ssd0");
  EXPECT_EQ(capacity, stats.capacity_bytes);
  EXPECT_EQ(used, stats.used_bytes);
  kvpool_free_string(nullptr);
}

TEST_F(CApiTest, SharedMemoryIsAlignedAndUsable) {
  std::vector<void*> blocks;
  for (size_t bytes : {size_t{1}, size_t{4096}, size_t{10000}, kLayers * 3 * kSegment}) {
    void* p = kvpool_alloc_shared(pool_, bytes);
    ASSERT_NE(p, nullptr) << kvpool_last_error();
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 4096, 0u) << bytes;
    std::memset(p, 0xab, bytes);
    blocks.push_back(p);
  }
  // The last block holds 3 chunks of every layer: a round trip through it.
  auto* kv = static_cast<uint8_t*>(blocks.back());
  for (size_t i = 0; i < kLayers * 3 * kSegment; ++i) kv[i] = static_cast<uint8_t>(i % 253);
  std::vector<void*> base;
  for (uint32_t l = 0; l < kLayers; ++l) base.push_back(kv + l * 3 * kSegment);
  const std::vector<kvpool_chunk_key> keys = Keys(3, 77);
  const kvpool_kv_buffer buffer{base.data(), kLayers, kSegment, 0};
  size_t n = 0;
  ASSERT_EQ(kvpool_offload(pool_, keys.data(), keys.size(), &buffer, &n), KVPOOL_OK);
  EXPECT_EQ(n, 3u);
  const std::vector<uint8_t> expected(kv, kv + kLayers * 3 * kSegment);
  std::memset(kv, 0, expected.size());
  ASSERT_EQ(kvpool_retrieve(pool_, keys.data(), keys.size(), &buffer, &n), KVPOOL_OK);
  EXPECT_EQ(n, 3u);
  EXPECT_EQ(std::memcmp(kv, expected.data(), expected.size()), 0);

  kvpool_free_shared(pool_, blocks[0]);
  kvpool_free_shared(pool_, blocks[0]);  // no longer known: ignored
  int unknown = 0;
  kvpool_free_shared(pool_, &unknown);
  kvpool_free_shared(pool_, nullptr);
  kvpool_free_shared(nullptr, blocks[1]);
  kvpool_free_shared(pool_, blocks[1]);
  // blocks[2] and blocks[3] are left for kvpool_close to release.

  // From 4 MiB on, whole 2 MiB pages (advised for transparent huge pages).
  void* large = kvpool_alloc_shared(pool_, (4u << 20) + 1);
  ASSERT_NE(large, nullptr) << kvpool_last_error();
  EXPECT_EQ(reinterpret_cast<uintptr_t>(large) % (2u << 20), 0u);
  std::memset(large, 0xcd, (4u << 20) + 1);
  kvpool_free_shared(pool_, large);

  EXPECT_EQ(kvpool_alloc_shared(pool_, 0), nullptr);
  EXPECT_TRUE(Contains(kvpool_last_error(), "bytes is 0")) << kvpool_last_error();
  EXPECT_EQ(kvpool_alloc_shared(nullptr, 4096), nullptr);
  EXPECT_TRUE(Contains(kvpool_last_error(), "pool is NULL")) << kvpool_last_error();
  EXPECT_EQ(kvpool_alloc_shared(pool_, SIZE_MAX), nullptr);
  EXPECT_TRUE(Contains(kvpool_last_error(), "no space")) << kvpool_last_error();
}

// Expects `status` to be KVPOOL_INVALID_ARGUMENT with a message naming `what`.
#define EXPECT_INVALID(call, what)                                                            \
  do {                                                                                        \
    EXPECT_EQ((call), KVPOOL_INVALID_ARGUMENT) << #call;                                      \
    EXPECT_TRUE(Contains(kvpool_last_error(), what)) << #call << ": " << kvpool_last_error(); \
  } while (0)

TEST_F(CApiTest, ArgumentsAreValidated) {
  const std::vector<kvpool_chunk_key> keys = Keys(2);
  HostKv kv(2, 1);
  kvpool_kv_buffer buf = kv.View();
  size_t n = 0;
  kvpool_shape shape{};
  kvpool_stats stats{};
  char* text = nullptr;
  kvpool_request* request = nullptr;

  EXPECT_INVALID(kvpool_get_shape(nullptr, &shape), "pool is NULL");
  EXPECT_INVALID(kvpool_get_shape(pool_, nullptr), "out is NULL");
  EXPECT_INVALID(kvpool_lookup(nullptr, keys.data(), 2, &n), "pool is NULL");
  EXPECT_INVALID(kvpool_lookup(pool_, keys.data(), 2, nullptr), "n_present is NULL");
  EXPECT_INVALID(kvpool_lookup(pool_, nullptr, 2, &n), "keys is NULL");
  EXPECT_EQ(kvpool_lookup(pool_, nullptr, 0, &n), KVPOOL_OK);
  EXPECT_EQ(n, 0u);
  EXPECT_INVALID(kvpool_find_child(nullptr, keys.data(), 1, keys.data() + 1, 1, &n),
                 "pool is NULL");
  EXPECT_INVALID(kvpool_find_child(pool_, keys.data(), 1, keys.data() + 1, 1, nullptr),
                 "index is NULL");
  EXPECT_INVALID(kvpool_find_child(pool_, nullptr, 1, keys.data() + 1, 1, &n),
                 "prefix is NULL but n_prefix is 1");
  EXPECT_INVALID(kvpool_find_child(pool_, keys.data(), 1, nullptr, 2, &n),
                 "candidates is NULL but n_candidates is 2");
  EXPECT_EQ(kvpool_find_child(pool_, nullptr, 0, nullptr, 0, &n), KVPOOL_OK);
  EXPECT_EQ(n, 0u);
  EXPECT_INVALID(kvpool_retrieve(nullptr, keys.data(), 2, &buf, &n), "pool is NULL");
  EXPECT_INVALID(kvpool_retrieve(pool_, keys.data(), 2, nullptr, &n), "dst is NULL");
  EXPECT_INVALID(kvpool_retrieve(pool_, keys.data(), 2, &buf, nullptr), "n_chunks is NULL");
  EXPECT_INVALID(kvpool_retrieve(pool_, nullptr, 2, &buf, &n), "keys is NULL");
  EXPECT_INVALID(kvpool_offload(nullptr, keys.data(), 2, &buf, &n), "pool is NULL");
  EXPECT_INVALID(kvpool_offload(pool_, keys.data(), 2, nullptr, &n), "src is NULL");
  EXPECT_INVALID(kvpool_remove(nullptr, keys.data(), 2, &n), "pool is NULL");
  EXPECT_INVALID(kvpool_remove(pool_, nullptr, 1, &n), "keys is NULL");
  EXPECT_INVALID(kvpool_flush(nullptr), "pool is NULL");
  EXPECT_INVALID(kvpool_get_stats(nullptr, &stats), "pool is NULL");
  EXPECT_INVALID(kvpool_get_stats(pool_, nullptr), "out is NULL");
  EXPECT_INVALID(kvpool_stats_json(nullptr, &text), "pool is NULL");
  EXPECT_INVALID(kvpool_stats_json(pool_, nullptr), "out is NULL");
  EXPECT_INVALID(kvpool_request_wait(nullptr, &n), "request is NULL");
  EXPECT_INVALID(kvpool_retrieve_async(pool_, keys.data(), 2, &buf, nullptr, nullptr, nullptr),
                 "out is NULL");
  EXPECT_INVALID(kvpool_retrieve_async(nullptr, keys.data(), 2, &buf, nullptr, nullptr, &request),
                 "pool is NULL");
  EXPECT_EQ(request, nullptr);

  // The buffer description: layer count, layer pointers, the pool's checks.
  buf.n_layers = kLayers - 1;
  EXPECT_INVALID(kvpool_offload(pool_, keys.data(), 2, &buf, &n), "src->n_layers is 3");
  EXPECT_INVALID(kvpool_retrieve(pool_, keys.data(), 2, &buf, &n), "dst->n_layers");
  buf = kv.View();
  buf.layer_base = nullptr;
  EXPECT_INVALID(kvpool_retrieve(pool_, keys.data(), 2, &buf, &n), "dst->layer_base is NULL");
  std::vector<void*> holes = kv.base;
  holes[2] = nullptr;
  buf = kvpool_kv_buffer{holes.data(), kLayers, kSegment, 0};
  EXPECT_INVALID(kvpool_offload(pool_, keys.data(), 2, &buf, &n), "src->layer_base[2] is NULL");
  EXPECT_INVALID(kvpool_retrieve_async(pool_, keys.data(), 2, &buf, nullptr, nullptr, &request),
                 "dst->layer_base[2] is NULL");
  buf = kv.View();
  buf.chunk_stride = kSegment / 2;
  EXPECT_INVALID(kvpool_offload(pool_, keys.data(), 2, &buf, &n), "chunk_stride");
  buf = kv.View(3);
  EXPECT_INVALID(kvpool_retrieve(pool_, keys.data(), 2, &buf, &n), "first_chunk");
  EXPECT_EQ(Lookup(keys), 0u);  // nothing was stored by the refused calls

  kvpool_close(nullptr);
}

}  // namespace
}  // namespace kvpool::testing
