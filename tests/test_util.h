// Helpers shared by the tests: temp dirs, deterministic KV data, pools.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <kvpool/kvpool.h>

#include "tier/device.h"

namespace kvpool::testing {

// A fresh directory under $KVPOOL_TEST_TMP (or /tmp), removed at destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Caller-side KV for `chunks` chunks of `shape`: layer-major, one contiguous
// array per layer, filled deterministically from `seed`.
class KvData {
 public:
  KvData(const ModelShape& shape, size_t chunks, uint64_t seed);
  KvData(const ModelShape& shape, size_t chunks);  // zero-filled
  KvBuffer View();
  ConstKvBuffer ConstView() const;
  bool SameAs(const KvData& other, size_t chunks) const;  // first `chunks` chunks equal
  size_t segment_bytes() const { return segment_; }

 private:
  size_t segment_;
  size_t chunks_;
  std::vector<std::vector<std::byte>> layers_;
};

// Tokens 0..n-1 mixed with `seed`, and their chain of keys.
std::vector<int32_t> MakeTokens(size_t n, uint64_t seed);
std::vector<ChunkKey> MakeKeys(const ModelShape& shape, size_t chunks, uint64_t seed,
                               std::string_view salt = "");

DeviceOptions DramOptions(std::string name, uint64_t capacity, double bandwidth_gibps = 1.0);

}  // namespace kvpool::testing
