// The C API (include/kvpool/c.h) over the C++ API (kvpool/client.h,
// kvpool/pool.h). Every function checks its arguments, turns a Status into a
// kvpool_status plus the calling thread's last error, and lets no exception
// escape.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <kvpool/c.h>
#include <kvpool/client.h>
#include <kvpool/kvpool.h>

#include "ipc/stats_json.h"
#include "util/aligned_buffer.h"

namespace {

static_assert(KVPOOL_OK == static_cast<int>(kvpool::StatusCode::kOk));
static_assert(KVPOOL_NOT_FOUND == static_cast<int>(kvpool::StatusCode::kNotFound));
static_assert(KVPOOL_INVALID_ARGUMENT == static_cast<int>(kvpool::StatusCode::kInvalidArgument));
static_assert(KVPOOL_IO_ERROR == static_cast<int>(kvpool::StatusCode::kIOError));
static_assert(KVPOOL_CORRUPTION == static_cast<int>(kvpool::StatusCode::kCorruption));
static_assert(KVPOOL_NO_SPACE == static_cast<int>(kvpool::StatusCode::kNoSpace));
static_assert(KVPOOL_BUSY == static_cast<int>(kvpool::StatusCode::kBusy));
static_assert(KVPOOL_UNSUPPORTED == static_cast<int>(kvpool::StatusCode::kUnsupported));
static_assert(KVPOOL_ABORTED == static_cast<int>(kvpool::StatusCode::kAborted));

// Alignment (and size granularity) of in-process kvpool_alloc_shared memory.
constexpr size_t kSharedAlignment = 4096;

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

// One block handed out by kvpool_alloc_shared: either a piece of a daemon
// connection's shared region or, in-process, an aligned heap block.
struct SharedAllocation {
  kvpool::SharedBuffer daemon;
  std::unique_ptr<void, FreeDeleter> local;
};

}  // namespace

// An open pool. `client` is `impl` seen as a daemon connection, or NULL for
// an in-process pool.
struct kvpool_pool {
  std::unique_ptr<kvpool::Pool> impl;
  kvpool::ClientPool* client = nullptr;
  std::mutex shared_mu;
  std::unordered_map<void*, SharedAllocation> shared;  // guarded by shared_mu
};

// One retrieval in flight. The destination description stays here until the
// request is waited for, so the pool may refer to it until then.
struct kvpool_request {
  kvpool::KvBuffer destination;
  kvpool::RetrieveHandle handle;
};

namespace {

using kvpool::Result;
using kvpool::Status;

thread_local std::string t_last_error;

// Records `message` as this thread's last error; never throws (an error
// message that cannot be stored leaves the last error empty).
void SetLastError(const char* prefix, const char* message) noexcept {
  try {
    t_last_error.assign(prefix).append(message);
  } catch (...) {
    t_last_error.clear();
  }
}

// The kvpool_status of `s`; a non-OK status becomes the last error.
kvpool_status Report(const Status& s) noexcept {
  if (!s.ok()) {
    try {
      t_last_error = s.ToString();
    } catch (...) {
      t_last_error.clear();
    }
  }
  return static_cast<kvpool_status>(s.code());
}

kvpool_status Invalid(const std::string& message) {
  return Report(Status::InvalidArgument(message));
}

// Runs `body` (which returns a kvpool_status). An exception that escapes it
// becomes KVPOOL_NO_SPACE (out of memory) or KVPOOL_IO_ERROR.
template <typename Body>
kvpool_status Guard(Body&& body) noexcept {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    SetLastError("no space: ", "out of memory");
    return KVPOOL_NO_SPACE;
  } catch (const std::exception& e) {
    SetLastError("I/O error: internal error: ", e.what());
    return KVPOOL_IO_ERROR;
  } catch (...) {
    SetLastError("I/O error: ", "internal error");
    return KVPOOL_IO_ERROR;
  }
}

// Returns the kvpool_status of `expr` (a Status) from the enclosing body when
// it is not OK.
#define KVP_C_RETURN_IF_ERROR(expr)              \
  do {                                           \
    const ::kvpool::Status kvp_c_s_ = (expr);    \
    if (!kvp_c_s_.ok()) return Report(kvp_c_s_); \
  } while (0)

// InvalidArgument "<name> is NULL" when `p` is NULL.
Status NotNull(const void* p, const char* name) {
  if (p != nullptr) return Status::OK();
  return Status::InvalidArgument(std::string(name) + " is NULL");
}

// An array named `name` may be NULL only when its length, named
// `count_name`, is 0.
Status CheckArray(const void* p, size_t n, const char* name, const char* count_name) {
  if (p != nullptr || n == 0) return Status::OK();
  return Status::InvalidArgument(std::string(name) + " is NULL but " + count_name + " is " +
                                 std::to_string(n));
}

// Keys may be NULL only when there are none.
Status CheckKeys(const kvpool_chunk_key* keys, size_t n_keys) {
  return CheckArray(keys, n_keys, "keys", "n_keys");
}

kvpool::ChunkKey FromC(const kvpool_chunk_key& k) { return kvpool::ChunkKey{k.hi, k.lo}; }

kvpool_chunk_key ToC(const kvpool::ChunkKey& k) { return kvpool_chunk_key{k.hi, k.lo}; }

std::vector<kvpool::ChunkKey> ToKeys(const kvpool_chunk_key* keys, size_t n_keys) {
  std::vector<kvpool::ChunkKey> out(n_keys);
  for (size_t i = 0; i < n_keys; ++i) out[i] = FromC(keys[i]);
  return out;
}

// Converts a C buffer description named `name` ("dst", "src"), checking it
// against a pool of `layers` layers. Strides and the chunk range are checked
// by the pool.
template <typename Byte>
Status ToKvBuffer(const kvpool_kv_buffer* b, const char* name, uint32_t layers,
                  kvpool::KvBufferT<Byte>* out) {
  const std::string field(name);
  KVP_RETURN_IF_ERROR(NotNull(b, name));
  KVP_RETURN_IF_ERROR(NotNull(b->layer_base, (field + "->layer_base").c_str()));
  if (b->n_layers != layers) {
    return Status::InvalidArgument(field + "->n_layers is " + std::to_string(b->n_layers) +
                                   ", the pool's shape has " + std::to_string(layers) + " layers");
  }
  out->layer_base.clear();
  for (uint32_t l = 0; l < layers; ++l) {
    const std::string entry = field + "->layer_base[" + std::to_string(l) + "]";
    KVP_RETURN_IF_ERROR(NotNull(b->layer_base[l], entry.c_str()));
    out->layer_base.push_back(static_cast<Byte*>(b->layer_base[l]));
  }
  out->chunk_stride = b->chunk_stride;
  out->first_chunk = b->first_chunk;
  return Status::OK();
}

uint32_t Layers(const kvpool_pool* pool) { return pool->impl->options().shape.layers; }

Result<kvpool::RegionPages> ToRegionPages(kvpool_region_pages pages) {
  switch (pages) {
    case KVPOOL_REGION_TRANSPARENT:
      return kvpool::RegionPages::kTransparent;
    case KVPOOL_REGION_HUGETLB:
      return kvpool::RegionPages::kHugetlb;
    case KVPOOL_REGION_SMALL:
      return kvpool::RegionPages::kSmall;
  }
  return Status::InvalidArgument("params->region_pages: " + std::to_string(int(pages)) +
                                 " is not a kvpool_region_pages (0 TRANSPARENT, 1 HUGETLB, "
                                 "2 SMALL)");
}

Result<kvpool::ClientOptions> ToClientOptions(const kvpool_params& p) {
  kvpool::ClientOptions o;
  if (p.tenant != nullptr) o.tenant = p.tenant;
  if (p.shared_bytes != 0) o.shared_bytes = p.shared_bytes;
  KVP_ASSIGN_OR_RETURN(o.region_pages, ToRegionPages(p.region_pages));
  if (p.timeout_ms != 0) o.timeout_ms = p.timeout_ms;
  o.reconnect = p.reconnect;
  return o;
}

// A copy of `text` in malloc'd memory (released with kvpool_free_string).
Status CopyString(const std::string& text, char** out) {
  char* s = static_cast<char*>(std::malloc(text.size() + 1));
  if (s == nullptr) {
    return Status::NoSpace("cannot allocate " + std::to_string(text.size() + 1) +
                           " bytes for the stats text");
  }
  std::memcpy(s, text.data(), text.size());
  s[text.size()] = '\0';
  *out = s;
  return Status::OK();
}

// Fills `a` with `bytes` of memory that the pool's devices access directly;
// *ptr receives its address.
Status AllocateShared(kvpool_pool* pool, size_t bytes, SharedAllocation* a, void** ptr) {
  if (pool->client != nullptr) {
    KVP_ASSIGN_OR_RETURN(a->daemon, pool->client->AllocateShared(bytes));
    *ptr = a->daemon.data();
    return Status::OK();
  }
  // From 4 MiB on, whole 2 MiB pages advised for transparent huge pages, so
  // that direct reads into them are a few DMA segments, not one per 4 KiB.
  a->local.reset(kvpool::AllocateAligned(bytes, kSharedAlignment));
  if (!a->local) return Status::NoSpace("cannot allocate " + std::to_string(bytes) + " bytes");
  *ptr = a->local.get();
  return Status::OK();
}

}  // namespace

extern "C" {

kvpool_params kvpool_default_params(void) {
  kvpool_params p;
  p.tenant = nullptr;
  p.shared_bytes = 0;
  p.region_pages = KVPOOL_REGION_TRANSPARENT;
  p.timeout_ms = 0;
  p.reconnect = true;
  return p;
}

const char* kvpool_status_name(kvpool_status status) {
  const int code = static_cast<int>(status);
  if (code < KVPOOL_OK || code > KVPOOL_ABORTED) return "unknown";
  // StatusCodeName returns string literals, so the view is NUL-terminated.
  return kvpool::StatusCodeName(static_cast<kvpool::StatusCode>(status)).data();
}

const char* kvpool_last_error(void) { return t_last_error.c_str(); }

kvpool_status kvpool_open(const char* target, const kvpool_params* params, kvpool_pool** out) {
  return Guard([&]() -> kvpool_status {
    KVP_C_RETURN_IF_ERROR(NotNull(out, "out"));
    *out = nullptr;
    KVP_C_RETURN_IF_ERROR(NotNull(target, "target"));
    auto options = ToClientOptions(params != nullptr ? *params : kvpool_default_params());
    if (!options.ok()) return Report(options.status());
    auto opened = kvpool::OpenPool(target, *options);
    if (!opened.ok()) return Report(opened.status());
    auto pool = std::make_unique<kvpool_pool>();
    pool->impl = std::move(opened).value();
    pool->client = dynamic_cast<kvpool::ClientPool*>(pool->impl.get());
    *out = pool.release();
    return KVPOOL_OK;
  });
}

void kvpool_close(kvpool_pool* pool) {
  if (pool == nullptr) return;
  Guard([&]() -> kvpool_status {
    pool->impl->Flush();
    return KVPOOL_OK;
  });
  // Shared memory the caller did not release goes back before its pool.
  Guard([&]() -> kvpool_status {
    std::lock_guard<std::mutex> lock(pool->shared_mu);
    pool->shared.clear();
    return KVPOOL_OK;
  });
  delete pool;
}

kvpool_status kvpool_get_shape(const kvpool_pool* pool, kvpool_shape* out) {
  return Guard([&]() -> kvpool_status {
    KVP_C_RETURN_IF_ERROR(NotNull(pool, "pool"));
    KVP_C_RETURN_IF_ERROR(NotNull(out, "out"));
    const kvpool::ModelShape& s = pool->impl->options().shape;
    out->layers = s.layers;
    out->kv_heads = s.kv_heads;
    out->head_dim = s.head_dim;
    out->dtype_bytes = s.dtype_bytes;
    out->chunk_tokens = s.chunk_tokens;
    out->segment_payload_bytes = s.SegmentPayloadBytes();
    out->fingerprint = s.Fingerprint();
    return KVPOOL_OK;
  });
}

kvpool_chunk_key kvpool_namespace(uint64_t model_fingerprint, const char* tenant_salt) {
  kvpool_chunk_key key{0, 0};
  Guard([&]() -> kvpool_status {
    key = ToC(kvpool::Namespace::Make(model_fingerprint, tenant_salt ? tenant_salt : "").id);
    return KVPOOL_OK;
  });
  return key;
}

size_t kvpool_chain_keys(kvpool_chunk_key ns, const int32_t* tokens, size_t n_tokens,
                         uint32_t chunk_tokens, kvpool_chunk_key* keys, size_t max_keys) {
  size_t full = 0;
  Guard([&]() -> kvpool_status {
    if (chunk_tokens == 0) return Invalid("chunk_tokens is 0");
    if (tokens == nullptr && n_tokens > 0) {
      return Invalid("tokens is NULL but n_tokens is " + std::to_string(n_tokens));
    }
    if (keys == nullptr && max_keys > 0) {
      return Invalid("keys is NULL but max_keys is " + std::to_string(max_keys));
    }
    const kvpool::Namespace space{FromC(ns)};
    const size_t count = n_tokens / chunk_tokens;
    kvpool::ChunkKey parent;
    for (size_t i = 0; i < count && i < max_keys; ++i) {
      parent = kvpool::NextChunkKey(space, parent, {tokens + i * chunk_tokens, chunk_tokens});
      keys[i] = ToC(parent);
    }
    full = count;
    return KVPOOL_OK;
  });
  return full;
}

kvpool_chunk_key kvpool_partial_chunk_key(kvpool_chunk_key ns, kvpool_chunk_key parent,
                                          const int32_t* tokens, size_t n_tokens) {
  kvpool_chunk_key key{0, 0};
  Guard([&]() -> kvpool_status {
    if (n_tokens == 0) return Invalid("n_tokens is 0: a partial chunk has at least one token");
    KVP_C_RETURN_IF_ERROR(NotNull(tokens, "tokens"));
    const kvpool::Namespace space{FromC(ns)};
    key = ToC(kvpool::PartialChunkKey(space, FromC(parent), {tokens, n_tokens}));
    return KVPOOL_OK;
  });
  return key;
}

kvpool_status kvpool_lookup(kvpool_pool* pool, const kvpool_chunk_key* keys, size_t n_keys,
                            size_t* n_present) {
  return Guard([&]() -> kvpool_status {
    KVP_C_RETURN_IF_ERROR(NotNull(pool, "pool"));
    KVP_C_RETURN_IF_ERROR(NotNull(n_present, "n_present"));
    KVP_C_RETURN_IF_ERROR(CheckKeys(keys, n_keys));
    *n_present = pool->impl->Lookup(ToKeys(keys, n_keys));
    return KVPOOL_OK;
  });
}

kvpool_status kvpool_find_child(kvpool_pool* pool, const kvpool_chunk_key* prefix, size_t n_prefix,
                                const kvpool_chunk_key* candidates, size_t n_candidates,
                                size_t* index) {
  return Guard([&]() -> kvpool_status {
    KVP_C_RETURN_IF_ERROR(NotNull(pool, "pool"));
    KVP_C_RETURN_IF_ERROR(NotNull(index, "index"));
    KVP_C_RETURN_IF_ERROR(CheckArray(prefix, n_prefix, "prefix", "n_prefix"));
    KVP_C_RETURN_IF_ERROR(CheckArray(candidates, n_candidates, "candidates", "n_candidates"));
    *index = pool->impl->FindChild(ToKeys(prefix, n_prefix), ToKeys(candidates, n_candidates));
    return KVPOOL_OK;
  });
}

kvpool_status kvpool_retrieve(kvpool_pool* pool, const kvpool_chunk_key* keys, size_t n_keys,
                              const kvpool_kv_buffer* dst, size_t* n_chunks) {
  return Guard([&]() -> kvpool_status {
    KVP_C_RETURN_IF_ERROR(NotNull(pool, "pool"));
    KVP_C_RETURN_IF_ERROR(NotNull(n_chunks, "n_chunks"));
    KVP_C_RETURN_IF_ERROR(CheckKeys(keys, n_keys));
    kvpool::KvBuffer destination;
    KVP_C_RETURN_IF_ERROR(ToKvBuffer(dst, "dst", Layers(pool), &destination));
    auto handle = pool->impl->Retrieve(ToKeys(keys, n_keys), destination, {});
    if (!handle.ok()) return Report(handle.status());
    auto n = handle->Wait();
    if (!n.ok()) return Report(n.status());
    *n_chunks = *n;
    return KVPOOL_OK;
  });
}

kvpool_status kvpool_retrieve_async(kvpool_pool* pool, const kvpool_chunk_key* keys, size_t n_keys,
                                    const kvpool_kv_buffer* dst,
                                    kvpool_layer_ready_fn on_layer_ready, void* user_data,
                                    kvpool_request** out) {
  return Guard([&]() -> kvpool_status {
    KVP_C_RETURN_IF_ERROR(NotNull(out, "out"));
    *out = nullptr;
    KVP_C_RETURN_IF_ERROR(NotNull(pool, "pool"));
    KVP_C_RETURN_IF_ERROR(CheckKeys(keys, n_keys));
    auto request = std::make_unique<kvpool_request>();
    KVP_C_RETURN_IF_ERROR(ToKvBuffer(dst, "dst", Layers(pool), &request->destination));
    kvpool::LayerReadyFn on_layer;
    if (on_layer_ready != nullptr) {
      on_layer = [on_layer_ready, user_data](uint32_t layer, size_t valid_chunks) {
        on_layer_ready(user_data, layer, valid_chunks);
      };
    }
    auto handle =
        pool->impl->Retrieve(ToKeys(keys, n_keys), request->destination, std::move(on_layer));
    if (!handle.ok()) return Report(handle.status());
    request->handle = std::move(handle).value();
    *out = request.release();
    return KVPOOL_OK;
  });
}

kvpool_status kvpool_request_wait(kvpool_request* request, size_t* n_chunks) {
  return Guard([&]() -> kvpool_status {
    KVP_C_RETURN_IF_ERROR(NotNull(request, "request"));
    std::unique_ptr<kvpool_request> owned(request);
    auto n = owned->handle.Wait();
    if (!n.ok()) return Report(n.status());
    if (n_chunks != nullptr) *n_chunks = *n;
    return KVPOOL_OK;
  });
}

kvpool_status kvpool_offload(kvpool_pool* pool, const kvpool_chunk_key* keys, size_t n_keys,
                             const kvpool_kv_buffer* src, size_t* n_stored) {
  return Guard([&]() -> kvpool_status {
    KVP_C_RETURN_IF_ERROR(NotNull(pool, "pool"));
    KVP_C_RETURN_IF_ERROR(CheckKeys(keys, n_keys));
    kvpool::ConstKvBuffer source;
    KVP_C_RETURN_IF_ERROR(ToKvBuffer(src, "src", Layers(pool), &source));
    auto handle = pool->impl->Offload(ToKeys(keys, n_keys), source);
    if (!handle.ok()) return Report(handle.status());
    auto n = handle->Wait();
    if (!n.ok()) return Report(n.status());
    if (n_stored != nullptr) *n_stored = *n;
    return KVPOOL_OK;
  });
}

kvpool_status kvpool_remove(kvpool_pool* pool, const kvpool_chunk_key* keys, size_t n_keys,
                            size_t* n_removed) {
  return Guard([&]() -> kvpool_status {
    KVP_C_RETURN_IF_ERROR(NotNull(pool, "pool"));
    KVP_C_RETURN_IF_ERROR(CheckKeys(keys, n_keys));
    const size_t n = pool->impl->Remove(ToKeys(keys, n_keys));
    if (n_removed != nullptr) *n_removed = n;
    return KVPOOL_OK;
  });
}

kvpool_status kvpool_flush(kvpool_pool* pool) {
  return Guard([&]() -> kvpool_status {
    KVP_C_RETURN_IF_ERROR(NotNull(pool, "pool"));
    pool->impl->Flush();
    return KVPOOL_OK;
  });
}

kvpool_status kvpool_get_stats(kvpool_pool* pool, kvpool_stats* out) {
  return Guard([&]() -> kvpool_status {
    KVP_C_RETURN_IF_ERROR(NotNull(pool, "pool"));
    KVP_C_RETURN_IF_ERROR(NotNull(out, "out"));
    const kvpool::PoolStats s = pool->impl->Stats();
    *out = kvpool_stats{};
    out->chunks = s.chunks;
    out->segments = s.segments;
    out->lookups = s.lookups;
    out->hit_chunks = s.hit_chunks;
    out->retrieved_chunks = s.retrieved_chunks;
    out->offloaded_chunks = s.offloaded_chunks;
    out->evicted_chunks = s.evicted_chunks;
    out->bytes_read_from_copies = s.bytes_read_from_copies;
    out->bytes_read_from_home = s.bytes_read_from_home;
    for (const kvpool::DeviceStats& d : s.devices) {
      out->capacity_bytes += d.capacity_bytes;
      out->used_bytes += d.used_bytes;
    }
    out->n_devices = static_cast<uint32_t>(s.devices.size());
    return KVPOOL_OK;
  });
}

kvpool_status kvpool_stats_json(kvpool_pool* pool, char** out) {
  return Guard([&]() -> kvpool_status {
    KVP_C_RETURN_IF_ERROR(NotNull(out, "out"));
    *out = nullptr;
    KVP_C_RETURN_IF_ERROR(NotNull(pool, "pool"));
    if (pool->client != nullptr) {
      auto text = pool->client->DaemonStatsJson();
      if (!text.ok()) return Report(text.status());
      return Report(CopyString(*text, out));
    }
    return Report(CopyString(kvpool::ipc::PoolStatsToJson(pool->impl->Stats()).dump(), out));
  });
}

void kvpool_free_string(char* s) { std::free(s); }

void* kvpool_alloc_shared(kvpool_pool* pool, size_t bytes) {
  void* result = nullptr;
  Guard([&]() -> kvpool_status {
    KVP_C_RETURN_IF_ERROR(NotNull(pool, "pool"));
    if (bytes == 0) return Invalid("bytes is 0");
    SharedAllocation allocation;
    void* ptr = nullptr;
    KVP_C_RETURN_IF_ERROR(AllocateShared(pool, bytes, &allocation, &ptr));
    std::lock_guard<std::mutex> lock(pool->shared_mu);
    pool->shared.emplace(ptr, std::move(allocation));
    result = ptr;
    return KVPOOL_OK;
  });
  return result;
}

void kvpool_free_shared(kvpool_pool* pool, void* ptr) {
  if (pool == nullptr || ptr == nullptr) return;
  Guard([&]() -> kvpool_status {
    decltype(pool->shared)::node_type released;  // destroyed after the lock is dropped
    std::lock_guard<std::mutex> lock(pool->shared_mu);
    released = pool->shared.extract(ptr);
    return KVPOOL_OK;
  });
}

}  // extern "C"
