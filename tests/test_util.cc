#include "test_util.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>

namespace kvpool::testing {

TempDir::TempDir() {
  const char* base = std::getenv("KVPOOL_TEST_TMP");
  std::string root = base ? base : "/tmp";
  std::filesystem::create_directories(root);
  std::string templ = root + "/kvpool-test-XXXXXX";
  char* made = mkdtemp(templ.data());
  path_ = made ? made : templ;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

KvData::KvData(const ModelShape& shape, size_t chunks)
    : segment_(shape.SegmentPayloadBytes()), chunks_(chunks), layers_(shape.layers) {
  for (auto& l : layers_) l.assign(segment_ * chunks, std::byte{0});
}

KvData::KvData(const ModelShape& shape, size_t chunks, uint64_t seed) : KvData(shape, chunks) {
  std::mt19937_64 rng(seed);
  for (auto& l : layers_) {
    for (size_t i = 0; i + 8 <= l.size(); i += 8) {
      uint64_t v = rng();
      std::memcpy(l.data() + i, &v, 8);
    }
  }
}

KvBuffer KvData::View() {
  KvBuffer b;
  for (auto& l : layers_) b.layer_base.push_back(l.data());
  b.chunk_stride = segment_;
  return b;
}

ConstKvBuffer KvData::ConstView() const {
  ConstKvBuffer b;
  for (auto& l : layers_) b.layer_base.push_back(l.data());
  b.chunk_stride = segment_;
  return b;
}

bool KvData::SameAs(const KvData& other, size_t chunks) const {
  for (size_t l = 0; l < layers_.size(); ++l) {
    if (std::memcmp(layers_[l].data(), other.layers_[l].data(), chunks * segment_) != 0) {
      return false;
    }
  }
  return true;
}

std::vector<int32_t> MakeTokens(size_t n, uint64_t seed) {
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::vector<int32_t> t(n);
  for (auto& x : t) x = static_cast<int32_t>(rng() % 32000);
  return t;
}

std::vector<ChunkKey> MakeKeys(const ModelShape& shape, size_t chunks, uint64_t seed,
                               std::string_view salt) {
  Namespace ns = Namespace::Make(shape.Fingerprint(), salt);
  return ChainChunkKeys(ns, MakeTokens(chunks * shape.chunk_tokens, seed), shape.chunk_tokens);
}

DeviceOptions DramOptions(std::string name, uint64_t capacity, double bandwidth_gibps) {
  DeviceOptions d;
  d.name = std::move(name);
  d.kind = DeviceKind::kDram;
  d.capacity_bytes = capacity;
  d.bandwidth_gibps = bandwidth_gibps;
  return d;
}

}  // namespace kvpool::testing
