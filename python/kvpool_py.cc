// The Python module `kvpool` over the C API (kvpool/c.h): it calls nothing
// else of libkvpool. python/README.md describes the API.
//
// Keys are (hi, lo) tuples of two ints in [0, 2**64); a chain of keys is a
// list of them. KV buffers are any objects with the buffer protocol
// (bytearray, memoryview, numpy arrays), one per layer, C-contiguous, laid
// out as in kvpool/c.h: segment (chunk c, layer l) at byte
// (c - first_chunk) * chunk_stride of layers[l].
//
// Blocking calls release the GIL. Errors of the pool raise kvpool.Error (a
// RuntimeError with .status, .message and .code); bad buffers raise
// ValueError or TypeError naming the layer.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <kvpool/c.h>

namespace py = pybind11;

namespace {

// kvpool.Error, created when the module is imported and never released.
PyObject* g_error = nullptr;

// Raises kvpool.Error with status `name` ("invalid argument", ...).
[[noreturn]] void RaiseError(kvpool_status code, const std::string& message) {
  const std::string name = kvpool_status_name(code);
  py::object error = py::reinterpret_borrow<py::object>(g_error)(py::str(name + ": " + message));
  error.attr("status") = name;
  error.attr("message") = message;
  error.attr("code") = static_cast<int>(code);
  PyErr_SetObject(g_error, error.ptr());
  throw py::error_already_set();
}

// Raises kvpool.Error for a failed C call; its message is this thread's
// kvpool_last_error() without the status name in front.
void Check(kvpool_status code) {
  if (code == KVPOOL_OK) return;
  std::string message = kvpool_last_error();
  const std::string prefix = std::string(kvpool_status_name(code)) + ": ";
  if (message.compare(0, prefix.size(), prefix) == 0) message.erase(0, prefix.size());
  RaiseError(code, message);
}

// The status whose name starts this thread's kvpool_last_error(), for calls
// that report failure without one (kvpool_alloc_shared).
kvpool_status LastErrorStatus() {
  const std::string message = kvpool_last_error();
  for (int c = KVPOOL_NOT_FOUND; c <= KVPOOL_ABORTED; ++c) {
    const auto code = static_cast<kvpool_status>(c);
    const std::string prefix = std::string(kvpool_status_name(code)) + ": ";
    if (message.compare(0, prefix.size(), prefix) == 0) return code;
  }
  return KVPOOL_IO_ERROR;
}

py::tuple KeyTuple(const kvpool_chunk_key& k) { return py::make_tuple(k.hi, k.lo); }

uint64_t ToU64(py::handle value, const std::string& what) {
  try {
    return py::cast<uint64_t>(value);
  } catch (const py::cast_error&) {
    throw py::value_error(what + " must be an int in [0, 2**64)");
  }
}

// One (hi, lo) pair named `name` in errors.
kvpool_chunk_key ToKey(py::handle key, const std::string& name) {
  if (!py::isinstance<py::sequence>(key) || py::isinstance<py::str>(key) || py::len(key) != 2) {
    throw py::type_error(name + " must be a (hi, lo) tuple");
  }
  const auto pair = py::reinterpret_borrow<py::sequence>(key);
  return kvpool_chunk_key{ToU64(pair[0], name + "[0]"), ToU64(pair[1], name + "[1]")};
}

// A sequence of (hi, lo) pairs named `name` in errors, as C keys.
std::vector<kvpool_chunk_key> ToKeys(py::handle keys, const std::string& name = "keys") {
  if (!py::isinstance<py::sequence>(keys) || py::isinstance<py::str>(keys)) {
    throw py::type_error(name + " must be a sequence of (hi, lo) tuples");
  }
  const auto seq = py::reinterpret_borrow<py::sequence>(keys);
  std::vector<kvpool_chunk_key> out(seq.size());
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = ToKey(seq[i], name + "[" + std::to_string(i) + "]");
  }
  return out;
}

py::list KeyList(const std::vector<kvpool_chunk_key>& keys) {
  py::list out;
  for (const kvpool_chunk_key& k : keys) out.append(KeyTuple(k));
  return out;
}

bool IsCContiguous(const py::buffer_info& b) {
  py::ssize_t expected = b.itemsize;
  for (py::ssize_t d = b.ndim - 1; d >= 0; --d) {
    if (b.shape[d] != 1 && b.strides[d] != expected) return false;
    expected *= b.shape[d];
  }
  return true;
}

// "i" or "l" of 4 bytes in native or little-endian order.
bool IsInt32Format(const py::buffer_info& b) {
  std::string f = b.format;
  if (!f.empty() && (f[0] == '@' || f[0] == '=' || f[0] == '<')) f.erase(0, 1);
  return b.itemsize == 4 && (f == "i" || f == "l");
}

// Tokens from a buffer of int32 (array('i'), numpy.int32) or a sequence of ints.
std::vector<int32_t> ToTokens(py::handle tokens) {
  if (PyObject_CheckBuffer(tokens.ptr())) {
    py::buffer_info b = py::reinterpret_borrow<py::buffer>(tokens).request();
    if (!IsInt32Format(b)) {
      throw py::type_error("tokens: a buffer must hold int32 items, got format '" + b.format + "'");
    }
    if (!IsCContiguous(b)) throw py::value_error("tokens: the buffer is not C-contiguous");
    const auto* p = static_cast<const int32_t*>(b.ptr);
    return std::vector<int32_t>(p, p + b.size);
  }
  if (!py::isinstance<py::sequence>(tokens) || py::isinstance<py::str>(tokens)) {
    throw py::type_error("tokens must be a buffer of int32 or a sequence of ints");
  }
  const auto seq = py::reinterpret_borrow<py::sequence>(tokens);
  std::vector<int32_t> out(seq.size());
  for (size_t i = 0; i < out.size(); ++i) {
    long long v = 0;
    try {
      v = py::cast<long long>(seq[i]);
    } catch (const py::cast_error&) {
      throw py::type_error("tokens[" + std::to_string(i) + "] is not an int");
    }
    if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max()) {
      throw py::value_error("tokens[" + std::to_string(i) + "] = " + std::to_string(v) +
                            " does not fit in int32");
    }
    out[i] = static_cast<int32_t>(v);
  }
  return out;
}

// Bytes that chunks [first_chunk, n_keys) occupy in one layer's buffer.
size_t BytesNeeded(size_t n_keys, size_t first_chunk, size_t chunk_stride, size_t segment) {
  if (n_keys <= first_chunk) return 0;
  const size_t gaps = n_keys - first_chunk - 1;
  if (chunk_stride != 0 && gaps > (std::numeric_limits<size_t>::max() - segment) / chunk_stride) {
    throw py::value_error("chunk_stride " + std::to_string(chunk_stride) + " times " +
                          std::to_string(gaps) + " chunks overflows");
  }
  return gaps * chunk_stride + segment;
}

// One buffer per layer, held (exported) for the duration of one call.
struct LayerBuffers {
  std::vector<py::buffer_info> views;
  std::vector<void*> base;
};

// Checks `layers` against the pool: one C-contiguous buffer per layer, each
// at least `need` bytes, writable when `writable`.
LayerBuffers ToLayers(py::handle layers, uint32_t n_layers, size_t need, bool writable) {
  if (!py::isinstance<py::sequence>(layers) || PyObject_CheckBuffer(layers.ptr())) {
    throw py::type_error("layers must be a sequence of buffers, one per layer");
  }
  const auto seq = py::reinterpret_borrow<py::sequence>(layers);
  if (seq.size() != n_layers) {
    throw py::value_error("layers has " + std::to_string(seq.size()) +
                          " buffers, the pool's shape has " + std::to_string(n_layers) + " layers");
  }
  LayerBuffers out;
  for (uint32_t l = 0; l < n_layers; ++l) {
    const std::string name = "layers[" + std::to_string(l) + "]";
    py::object item = seq[l];
    if (!PyObject_CheckBuffer(item.ptr())) {
      throw py::type_error(name + " does not support the buffer protocol");
    }
    py::buffer_info view = py::reinterpret_borrow<py::buffer>(item).request();
    if (writable && view.readonly) {
      throw py::value_error(name + " is read-only (retrieve writes into it)");
    }
    if (!IsCContiguous(view)) throw py::value_error(name + " is not C-contiguous");
    const size_t bytes = static_cast<size_t>(view.size * view.itemsize);
    if (bytes < need) {
      throw py::value_error(name + " has " + std::to_string(bytes) + " bytes, the chunks need " +
                            std::to_string(need));
    }
    out.base.push_back(view.ptr);
    out.views.push_back(std::move(view));
  }
  return out;
}

// The C pool of one open Pool, shared by the Pool and every shared-memory
// buffer it handed out: kvpool_close runs when the last of them is gone,
// after every kvpool_free_shared.
class PoolHandle {
 public:
  explicit PoolHandle(kvpool_pool* pool) : pool_(pool) {}
  ~PoolHandle() { kvpool_close(pool_); }
  PoolHandle(const PoolHandle&) = delete;
  PoolHandle& operator=(const PoolHandle&) = delete;
  kvpool_pool* get() const { return pool_; }

 private:
  kvpool_pool* pool_;
};

// Memory from kvpool_alloc_shared; exported through the buffer protocol.
class SharedBuffer {
 public:
  SharedBuffer(std::shared_ptr<PoolHandle> pool, void* data, size_t size)
      : pool_(std::move(pool)), data_(data), size_(size) {}
  ~SharedBuffer() { kvpool_free_shared(pool_->get(), data_); }
  SharedBuffer(const SharedBuffer&) = delete;
  SharedBuffer& operator=(const SharedBuffer&) = delete;

  py::buffer_info Info() const {
    return py::buffer_info(data_, 1, "B", 1, {static_cast<py::ssize_t>(size_)}, {py::ssize_t{1}},
                           /*readonly=*/false);
  }
  size_t size() const { return size_; }

 private:
  std::shared_ptr<PoolHandle> pool_;
  void* data_;
  size_t size_;
};

class Pool {
 public:
  explicit Pool(std::shared_ptr<PoolHandle> handle) : handle_(std::move(handle)) {
    Check(kvpool_get_shape(handle_->get(), &shape_));
  }

  // The open handle; kvpool.Error ("aborted") once the pool is closed.
  std::shared_ptr<PoolHandle> Handle() const {
    if (!handle_) RaiseError(KVPOOL_ABORTED, "the pool is closed");
    return handle_;
  }

  bool closed() const { return handle_ == nullptr; }

  py::dict Shape() const {
    py::dict d;
    d["layers"] = shape_.layers;
    d["kv_heads"] = shape_.kv_heads;
    d["head_dim"] = shape_.head_dim;
    d["dtype_bytes"] = shape_.dtype_bytes;
    d["chunk_tokens"] = shape_.chunk_tokens;
    d["segment_payload_bytes"] = shape_.segment_payload_bytes;
    d["fingerprint"] = shape_.fingerprint;
    return d;
  }

  // Flushes and releases the pool (once every shared buffer is gone too).
  void Close() {
    if (!handle_) return;
    std::shared_ptr<PoolHandle> handle = std::move(handle_);
    kvpool_status st;
    {
      py::gil_scoped_release nogil;
      st = kvpool_flush(handle->get());
    }
    Check(st);
  }

  size_t Lookup(py::handle keys) {
    const auto handle = Handle();
    const std::vector<kvpool_chunk_key> k = ToKeys(keys);
    size_t present = 0;
    kvpool_status st;
    {
      py::gil_scoped_release nogil;
      st = kvpool_lookup(handle->get(), k.data(), k.size(), &present);
    }
    Check(st);
    return present;
  }

  // The index of the first of `candidates` present as a child of prefix[-1],
  // or len(candidates).
  size_t FindChild(py::handle prefix, py::handle candidates) {
    const auto handle = Handle();
    const std::vector<kvpool_chunk_key> p = ToKeys(prefix, "prefix");
    const std::vector<kvpool_chunk_key> c = ToKeys(candidates, "candidates");
    size_t index = 0;
    kvpool_status st;
    {
      py::gil_scoped_release nogil;
      st = kvpool_find_child(handle->get(), p.data(), p.size(), c.data(), c.size(), &index);
    }
    Check(st);
    return index;
  }

  size_t Offload(py::handle keys, py::handle layers, size_t chunk_stride, size_t first_chunk) {
    return Transfer(keys, layers, chunk_stride, first_chunk, /*retrieve=*/false);
  }

  size_t Retrieve(py::handle keys, py::handle layers, size_t chunk_stride, size_t first_chunk) {
    return Transfer(keys, layers, chunk_stride, first_chunk, /*retrieve=*/true);
  }

  size_t Remove(py::handle keys) {
    const auto handle = Handle();
    const std::vector<kvpool_chunk_key> k = ToKeys(keys);
    size_t removed = 0;
    kvpool_status st;
    {
      py::gil_scoped_release nogil;
      st = kvpool_remove(handle->get(), k.data(), k.size(), &removed);
    }
    Check(st);
    return removed;
  }

  void Flush() {
    const auto handle = Handle();
    kvpool_status st;
    {
      py::gil_scoped_release nogil;
      st = kvpool_flush(handle->get());
    }
    Check(st);
  }

  py::object Stats() {
    const auto handle = Handle();
    char* text = nullptr;
    kvpool_status st;
    {
      py::gil_scoped_release nogil;
      st = kvpool_stats_json(handle->get(), &text);
    }
    Check(st);
    py::str json(text);
    kvpool_free_string(text);
    return py::module_::import("json").attr("loads")(json);
  }

  // A writable memoryview of `nbytes` of shared memory, freed once no view
  // of it is left.
  py::memoryview AllocShared(size_t nbytes) {
    const auto handle = Handle();
    if (nbytes == 0) throw py::value_error("nbytes must be > 0");
    void* p = kvpool_alloc_shared(handle->get(), nbytes);
    if (p == nullptr) Check(LastErrorStatus());
    py::object owner = py::cast(std::make_unique<SharedBuffer>(handle, p, nbytes));
    return py::memoryview(owner);
  }

 private:
  // Offload from, or retrieve into, one buffer per layer.
  size_t Transfer(py::handle keys, py::handle layers, size_t chunk_stride, size_t first_chunk,
                  bool retrieve) {
    const auto handle = Handle();
    const std::vector<kvpool_chunk_key> k = ToKeys(keys);
    const size_t need =
        BytesNeeded(k.size(), first_chunk, chunk_stride, shape_.segment_payload_bytes);
    LayerBuffers buffers = ToLayers(layers, shape_.layers, need, retrieve);
    const kvpool_kv_buffer kv{buffers.base.data(), shape_.layers, chunk_stride, first_chunk};
    size_t n = 0;
    kvpool_status st;
    {
      py::gil_scoped_release nogil;
      st = retrieve ? kvpool_retrieve(handle->get(), k.data(), k.size(), &kv, &n)
                    : kvpool_offload(handle->get(), k.data(), k.size(), &kv, &n);
    }
    Check(st);
    return n;
  }

  std::shared_ptr<PoolHandle> handle_;
  kvpool_shape shape_{};
};

// kvpool.Error ("invalid argument") for a name that is none of the three.
kvpool_region_pages RegionPages(const std::string& name) {
  if (name == "transparent") return KVPOOL_REGION_TRANSPARENT;
  if (name == "hugetlb") return KVPOOL_REGION_HUGETLB;
  if (name == "small") return KVPOOL_REGION_SMALL;
  RaiseError(KVPOOL_INVALID_ARGUMENT,
             "region_pages: '" + name + "' is not one of 'transparent', 'hugetlb', 'small'");
}

std::unique_ptr<Pool> Open(const std::string& target, const std::optional<std::string>& tenant,
                           uint64_t shared_bytes, uint32_t timeout_ms, bool reconnect,
                           const std::string& region_pages) {
  kvpool_params params = kvpool_default_params();
  if (tenant) params.tenant = tenant->c_str();
  params.shared_bytes = shared_bytes;
  params.region_pages = RegionPages(region_pages);
  params.timeout_ms = timeout_ms;
  params.reconnect = reconnect;
  kvpool_pool* pool = nullptr;
  kvpool_status st;
  {
    py::gil_scoped_release nogil;
    st = kvpool_open(target.c_str(), &params, &pool);
  }
  Check(st);
  return std::make_unique<Pool>(std::make_shared<PoolHandle>(pool));
}

py::tuple Namespace(uint64_t fingerprint, const std::string& salt) {
  return KeyTuple(kvpool_namespace(fingerprint, salt.c_str()));
}

py::list ChainKeys(py::handle ns, py::handle tokens, uint32_t chunk_tokens) {
  if (chunk_tokens == 0) throw py::value_error("chunk_tokens must be > 0");
  const kvpool_chunk_key space = ToKey(ns, "ns");
  const std::vector<int32_t> t = ToTokens(tokens);
  std::vector<kvpool_chunk_key> keys(t.size() / chunk_tokens);
  kvpool_chain_keys(space, t.data(), t.size(), chunk_tokens, keys.data(), keys.size());
  return KeyList(keys);
}

// ValueError for an empty `tokens`: a partial chunk has at least one token.
py::tuple PartialChunkKey(py::handle ns, py::handle parent, py::handle tokens) {
  const kvpool_chunk_key space = ToKey(ns, "ns");
  const kvpool_chunk_key after = ToKey(parent, "parent");
  const std::vector<int32_t> t = ToTokens(tokens);
  if (t.empty()) throw py::value_error("tokens must not be empty");
  return KeyTuple(kvpool_partial_chunk_key(space, after, t.data(), t.size()));
}

}  // namespace

PYBIND11_MODULE(kvpool, m) {
  m.doc() =
      "kvpool: a KV-cache pool over DRAM and SSDs (over the C API, kvpool/c.h).\n\n"
      "Keys are (hi, lo) tuples of two ints in [0, 2**64). KV buffers are objects with the\n"
      "buffer protocol (bytearray, memoryview, numpy arrays), one C-contiguous buffer per\n"
      "layer; segment (chunk c, layer l) lies at byte (c - first_chunk) * chunk_stride of\n"
      "layers[l]. See python/README.md.";

  g_error = PyErr_NewExceptionWithDoc(
      "kvpool.Error",
      "A kvpool call failed. status: the status name ('invalid argument', 'I/O error', ...); "
      "message: what failed; code: the kvpool_status value.",
      PyExc_RuntimeError, nullptr);
  if (g_error == nullptr) throw py::error_already_set();
  m.attr("Error") = py::handle(g_error);

  py::class_<SharedBuffer>(m, "SharedBuffer", py::buffer_protocol(),
                           "Memory from Pool.alloc_shared (reached through a memoryview).")
      .def_buffer(&SharedBuffer::Info)
      .def("__len__", &SharedBuffer::size);

  py::class_<Pool>(m, "Pool", "An open pool; from kvpool.open(). A context manager.")
      .def_property_readonly("shape", &Pool::Shape,
                             "dict: layers, kv_heads, head_dim, dtype_bytes, chunk_tokens, "
                             "segment_payload_bytes, fingerprint")
      .def_property_readonly("closed", &Pool::closed)
      .def("lookup", &Pool::Lookup, py::arg("keys"), "Number of leading chunks of keys present.")
      .def("find_child", &Pool::FindChild, py::arg("prefix"), py::arg("candidates"),
           "The index of the first of candidates present as a child of prefix[-1] (of no chunk "
           "when prefix is empty), or len(candidates); prefix is what lookup found.")
      .def("offload", &Pool::Offload, py::arg("keys"), py::arg("layers"), py::arg("chunk_stride"),
           py::arg("first_chunk") = 0,
           "Stores chunks [first_chunk, len(keys)) from one readable buffer per layer; "
           "returns the chunks newly stored.")
      .def("retrieve", &Pool::Retrieve, py::arg("keys"), py::arg("layers"), py::arg("chunk_stride"),
           py::arg("first_chunk") = 0,
           "Reads the leading present chunks into one writable buffer per layer; returns the "
           "number of leading chunks now held, counting first_chunk.")
      .def("remove", &Pool::Remove, py::arg("keys"),
           "Removes chunks; returns how many were present.")
      .def("flush", &Pool::Flush, "Waits for every offload submitted so far.")
      .def("stats", &Pool::Stats, "Everything as a dict (kvpool_stats_json).")
      .def("alloc_shared", &Pool::AllocShared, py::arg("nbytes"),
           "A writable memoryview of nbytes of page-aligned memory that the devices read and "
           "write directly; freed once no view of it is left.")
      .def("close", &Pool::Close,
           "Waits for pending offloads and releases the pool (the pool itself goes once every "
           "alloc_shared buffer is gone too).")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](Pool& self, py::args) {
        self.Close();
        return false;
      });

  m.def("open", &Open, py::arg("target"), py::arg("tenant") = py::none(),
        py::arg("shared_bytes") = 0, py::arg("timeout_ms") = 0, py::arg("reconnect") = true,
        py::arg("region_pages") = "transparent",
        "Opens a pool: 'unix:PATH' connects to kvpoold, anything else is a TOML file opened "
        "in-process. 0 means the default for shared_bytes and timeout_ms. region_pages: what "
        "backs the daemon connection's shared region ('transparent' huge pages, 'hugetlb' "
        "pages from vm.nr_hugepages, or 'small' 4 KiB pages).");
  m.def("namespace", &Namespace, py::arg("fingerprint"), py::arg("salt") = "",
        "The (hi, lo) namespace key of a model fingerprint and a tenant salt.");
  m.def("chain_keys", &ChainKeys, py::arg("ns"), py::arg("tokens"), py::arg("chunk_tokens"),
        "The chained keys of every full chunk of tokens (a buffer of int32 or a sequence of "
        "ints), as a list of (hi, lo) tuples.");
  m.def("partial_chunk_key", &PartialChunkKey, py::arg("ns"), py::arg("parent"), py::arg("tokens"),
        "The (hi, lo) key of a partial chunk: tokens (at least one, fewer than a chunk; int32 "
        "as for chain_keys) that follow the full chunk parent ((0, 0) at the start of a prompt). "
        "Stored as the last key of its parent's chain; found with Pool.find_child.");
}
