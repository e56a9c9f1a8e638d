// Header-only helpers for tests that drive a pool: building a PoolImpl from
// injected devices, and blocking offload/retrieve wrappers.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/pool_impl.h"
#include "test_util.h"

namespace kvpool::testing {

// Wraps the device opened for options.devices[i] (e.g. in a fault device).
using DeviceWrapper =
    std::function<std::unique_ptr<Device>(size_t index, std::unique_ptr<Device> device)>;

// Opens every device of `options` (plus `wrap`) and creates the pool; fails
// the test on error.
inline std::unique_ptr<PoolImpl> MakePool(PoolOptions options, const DeviceWrapper& wrap = {}) {
  std::vector<std::unique_ptr<Device>> devices;
  const uint32_t payload = static_cast<uint32_t>(options.shape.SegmentPayloadBytes());
  const ChunkKey pool_id = Namespace::Make(options.shape.Fingerprint(), options.tenant_salt).id;
  for (size_t i = 0; i < options.devices.size(); ++i) {
    auto d = OpenDevice(options.devices[i], payload, pool_id);
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    if (!d.ok()) return nullptr;
    devices.push_back(wrap ? wrap(i, std::move(d).value()) : std::move(d).value());
  }
  auto pool = PoolImpl::Create(std::move(options), std::move(devices));
  EXPECT_TRUE(pool.ok()) << pool.status().ToString();
  if (!pool.ok()) return nullptr;
  return std::move(pool).value();
}

inline DeviceOptions FileOptions(std::string name, std::string path, uint64_t capacity,
                                 double bandwidth_gibps = 1.0) {
  DeviceOptions d;
  d.name = std::move(name);
  d.kind = DeviceKind::kFilePerChunk;
  d.path = std::move(path);
  d.capacity_bytes = capacity;
  d.bandwidth_gibps = bandwidth_gibps;
  return d;
}

// A view of `data` that starts at chunk `first` (source.first_chunk = first).
inline ConstKvBuffer ViewFrom(const KvData& data, size_t first) {
  ConstKvBuffer b = data.ConstView();
  for (auto& base : b.layer_base) base += first * b.chunk_stride;
  b.first_chunk = first;
  return b;
}

// Offloads and waits; returns Wait()'s result.
inline Result<size_t> OffloadSync(Pool& pool, std::span<const ChunkKey> keys,
                                  const ConstKvBuffer& source) {
  auto h = pool.Offload(keys, source);
  if (!h.ok()) return h.status();
  return h->Wait();
}

// What a Retrieve reported: Wait()'s result and every layer callback.
struct RetrieveOutcome {
  Result<size_t> valid = Status::Aborted("not run");
  std::vector<uint32_t> layers;        // in callback order
  std::vector<size_t> valid_by_layer;  // valid_chunks of each callback
};

inline RetrieveOutcome RetrieveSync(Pool& pool, std::span<const ChunkKey> keys, KvData& dst) {
  RetrieveOutcome out;
  // Callbacks are serialized by the pool; the mutex makes that explicit for
  // the reader (and for ThreadSanitizer) without relying on it.
  auto mu = std::make_shared<std::mutex>();
  auto h = pool.Retrieve(keys, dst.View(), [&out, mu](uint32_t layer, size_t valid) {
    std::lock_guard<std::mutex> lock(*mu);
    out.layers.push_back(layer);
    out.valid_by_layer.push_back(valid);
  });
  if (!h.ok()) {
    out.valid = h.status();
    return out;
  }
  out.valid = h->Wait();
  std::lock_guard<std::mutex> lock(*mu);
  return out;
}

// Layer callbacks came once per layer, in increasing order, with a
// non-increasing valid count that ends at least at the final count.
inline void ExpectWellOrderedLayers(const RetrieveOutcome& r, uint32_t layers) {
  ASSERT_EQ(r.layers.size(), layers);
  for (uint32_t l = 0; l < layers; ++l) EXPECT_EQ(r.layers[l], l);
  for (size_t i = 1; i < r.valid_by_layer.size(); ++i) {
    EXPECT_LE(r.valid_by_layer[i], r.valid_by_layer[i - 1]) << "layer " << i;
  }
  if (r.valid.ok() && !r.valid_by_layer.empty()) {
    EXPECT_EQ(r.valid_by_layer.back(), *r.valid);
  }
}

}  // namespace kvpool::testing
