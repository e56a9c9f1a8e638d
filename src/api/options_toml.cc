// TOML loading of PoolOptions. See docs/configuration.md for the schema.
#include <toml++/toml.h>

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <kvpool/options.h>
#include <set>
#include <sstream>
#include <string>

namespace kvpool {
namespace {

// Reads typed keys from one TOML table and rejects keys nobody asked for.
class TableReader {
 public:
  TableReader(const toml::table& table, std::string prefix)
      : table_(table), prefix_(std::move(prefix)) {}

  template <typename T>
  Status Get(const char* key, T* out) {
    seen_.insert(key);
    const toml::node* node = table_.get(key);
    if (node == nullptr) return Status::OK();
    // Exact retrieval: toml++'s value<T>() would read `true` as 1 and `1` as true.
    if constexpr (std::is_same_v<T, bool>) {
      if (auto v = node->value_exact<bool>()) return *out = *v, Status::OK();
      return TypeError(key, "a boolean");
    } else if constexpr (std::is_same_v<T, std::string>) {
      if (auto v = node->value_exact<std::string>()) return *out = *v, Status::OK();
      return TypeError(key, "a string");
    } else if constexpr (std::is_floating_point_v<T>) {
      if (!node->is_number()) return TypeError(key, "a number");
      return *out = static_cast<T>(*node->value<double>()), Status::OK();
    } else {
      auto v = node->value_exact<int64_t>();
      if (!v || *v < 0 || static_cast<uint64_t>(*v) > std::numeric_limits<T>::max()) {
        return TypeError(key, "a non-negative integer in range");
      }
      *out = static_cast<T>(*v);
      return Status::OK();
    }
  }

  void Known(const char* key) { seen_.insert(key); }

  // An array of strings.
  Status GetStrings(const char* key, std::vector<std::string>* out) {
    seen_.insert(key);
    const toml::node* node = table_.get(key);
    if (node == nullptr) return Status::OK();
    const toml::array* a = node->as_array();
    if (a == nullptr) return TypeError(key, "an array of strings");
    out->clear();
    for (const toml::node& e : *a) {
      auto v = e.value_exact<std::string>();
      if (!v) return TypeError(key, "an array of strings");
      out->push_back(*v);
    }
    return Status::OK();
  }

  // A size: an integer of bytes or a string such as "512MiB", "4 GiB".
  Status GetBytes(const char* key, uint64_t* out);

  Status RejectUnknown() const {
    for (const auto& [k, v] : table_) {
      if (!seen_.count(std::string(k.str()))) {
        return Status::InvalidArgument(Name(std::string(k.str())) + " is not a known option");
      }
    }
    return Status::OK();
  }

  std::string Name(const std::string& key) const {
    return prefix_.empty() ? key : prefix_ + "." + key;
  }

 private:
  Status TypeError(const char* key, const char* want) const {
    return Status::InvalidArgument(Name(key) + " must be " + want);
  }

  const toml::table& table_;
  std::string prefix_;
  std::set<std::string> seen_;
};

Status TableReader::GetBytes(const char* key, uint64_t* out) {
  seen_.insert(key);
  const toml::node* node = table_.get(key);
  if (node == nullptr) return Status::OK();
  if (auto v = node->value_exact<int64_t>(); v && *v >= 0) return *out = *v, Status::OK();
  if (auto s = node->value_exact<std::string>()) {
    auto r = ParseByteSize(*s);
    if (!r.ok()) return Status::InvalidArgument(Name(key) + ": " + r.status().message());
    *out = *r;
    return Status::OK();
  }
  return TypeError(key, "a byte count or a size string such as \"4GiB\"");
}

Status ReadModel(const toml::table& t, ModelShape* shape) {
  TableReader r(t, "model");
  std::string preset;
  KVP_RETURN_IF_ERROR(r.Get("preset", &preset));
  if (!preset.empty()) {
    auto p = ModelShape::Preset(preset);
    if (!p.ok()) return p.status().WithContext("model.preset");
    *shape = *p;
  }
  KVP_RETURN_IF_ERROR(r.Get("name", &shape->name));
  KVP_RETURN_IF_ERROR(r.Get("layers", &shape->layers));
  KVP_RETURN_IF_ERROR(r.Get("kv_heads", &shape->kv_heads));
  KVP_RETURN_IF_ERROR(r.Get("head_dim", &shape->head_dim));
  KVP_RETURN_IF_ERROR(r.Get("dtype_bytes", &shape->dtype_bytes));
  KVP_RETURN_IF_ERROR(r.Get("chunk_tokens", &shape->chunk_tokens));
  KVP_RETURN_IF_ERROR(r.Get("sliding_window", &shape->sliding_window));
  double scale = 1;
  KVP_RETURN_IF_ERROR(r.Get("scale", &scale));
  KVP_RETURN_IF_ERROR(r.RejectUnknown());
  if (scale != 1) {
    auto s = shape->Scaled(scale);
    if (!s.ok()) return s.status().WithContext("model.scale");
    *shape = *s;
  }
  return Status::OK();
}

Status ReadNumaNode(const toml::table& t, TableReader& r, DeviceOptions* d) {
  r.Known("numa_node");
  const toml::node* node = t.get("numa_node");
  if (node == nullptr) return Status::OK();
  if (auto s = node->value<std::string>(); s && *s == "each") {
    d->numa_node = kEachNumaNode;
    return Status::OK();
  }
  if (auto v = node->value<int64_t>(); v && *v >= 0 && *v < 4096) {
    d->numa_node = static_cast<int>(*v);
    return Status::OK();
  }
  return Status::InvalidArgument(r.Name("numa_node") + " must be a node number or \"each\"");
}

Status ReadDevice(const toml::table& t, size_t index, DeviceOptions* d) {
  TableReader r(t, "device[" + std::to_string(index) + "]");
  std::string kind;
  KVP_RETURN_IF_ERROR(r.Get("kind", &kind));
  if (kind.empty()) return Status::InvalidArgument(r.Name("kind") + " is required");
  auto k = ParseDeviceKind(kind);
  if (!k.ok()) return k.status().WithContext(r.Name("kind"));
  d->kind = *k;
  KVP_RETURN_IF_ERROR(r.Get("name", &d->name));
  KVP_RETURN_IF_ERROR(r.Get("path", &d->path));
  KVP_RETURN_IF_ERROR(r.GetBytes("capacity", &d->capacity_bytes));
  KVP_RETURN_IF_ERROR(r.Get("bandwidth_gibps", &d->bandwidth_gibps));
  KVP_RETURN_IF_ERROR(r.Get("io_threads", &d->io_threads));
  KVP_RETURN_IF_ERROR(r.Get("queue_depth", &d->queue_depth));
  KVP_RETURN_IF_ERROR(ReadNumaNode(t, r, d));
  KVP_RETURN_IF_ERROR(r.Get("huge_pages", &d->huge_pages));
  KVP_RETURN_IF_ERROR(r.Get("direct_io", &d->direct_io));
  KVP_RETURN_IF_ERROR(r.Get("engine", &d->engine));
  KVP_RETURN_IF_ERROR(r.Get("sqpoll", &d->sqpoll));
  KVP_RETURN_IF_ERROR(r.Get("zero_copy", &d->zero_copy));
  KVP_RETURN_IF_ERROR(r.Get("reformat", &d->reformat));
  KVP_RETURN_IF_ERROR(r.Get("transport", &d->transport));
  KVP_RETURN_IF_ERROR(r.Get("throttle_gibps", &d->throttle_gibps));
  KVP_RETURN_IF_ERROR(r.GetStrings("nodes", &d->nodes));
  KVP_RETURN_IF_ERROR(r.Get("user", &d->user));
  KVP_RETURN_IF_ERROR(r.Get("password", &d->password));
  KVP_RETURN_IF_ERROR(r.Get("key_prefix", &d->key_prefix));
  KVP_RETURN_IF_ERROR(r.Get("timeout_ms", &d->timeout_ms));
  KVP_RETURN_IF_ERROR(r.Get("ttl_s", &d->ttl_s));
  return r.RejectUnknown();
}

Status ReadPool(const toml::table& root, PoolOptions* o) {
  TableReader r(root, "");
  KVP_RETURN_IF_ERROR(r.Get("state_dir", &o->state_dir));
  KVP_RETURN_IF_ERROR(r.Get("tenant_salt", &o->tenant_salt));
  KVP_RETURN_IF_ERROR(r.Get("max_pending_writes", &o->max_pending_writes));
  KVP_RETURN_IF_ERROR(r.Get("high_watermark", &o->high_watermark));
  KVP_RETURN_IF_ERROR(r.Get("low_watermark", &o->low_watermark));
  KVP_RETURN_IF_ERROR(r.Get("probe_mib", &o->probe_mib));
  KVP_RETURN_IF_ERROR(r.Get("hot_probation_fraction", &o->hot_probation_fraction));
  KVP_RETURN_IF_ERROR(r.Get("max_write_delay_ms", &o->max_write_delay_ms));
  std::string placement = std::string(PlacementModeName(o->placement));
  KVP_RETURN_IF_ERROR(r.Get("placement", &placement));
  auto mode = ParsePlacementMode(placement);
  if (!mode.ok()) return mode.status();
  o->placement = *mode;
  r.Known("model");  // tables, read below
  r.Known("device");
  KVP_RETURN_IF_ERROR(r.RejectUnknown());
  if (const toml::table* model = root["model"].as_table()) {
    KVP_RETURN_IF_ERROR(ReadModel(*model, &o->shape));
  } else {
    return Status::InvalidArgument("[model] table is required (e.g. preset = \"llama-3.1-8b\")");
  }
  const toml::array* devices = root["device"].as_array();
  if (devices == nullptr) return Status::InvalidArgument("at least one [[device]] is required");
  for (size_t i = 0; i < devices->size(); ++i) {
    const toml::table* t = (*devices)[i].as_table();
    if (t == nullptr) return Status::InvalidArgument("device[" + std::to_string(i) + "] must be a table");
    DeviceOptions d;
    KVP_RETURN_IF_ERROR(ReadDevice(*t, i, &d));
    o->devices.push_back(std::move(d));
  }
  return Status::OK();
}

}  // namespace

Result<uint64_t> ParseByteSize(std::string_view text_view) {
  const std::string text(text_view);
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  // std::stod would throw on "." and stop silently inside "1.2.3": parse
  // the number with strtod and require it to use every digit and dot.
  const std::string number = text.substr(0, i);
  char* end = nullptr;
  double value = std::strtod(number.c_str(), &end);
  if (i == 0 || end != number.c_str() + number.size()) {
    return Status::InvalidArgument("'" + text + "' is not a size");
  }
  std::string unit = text.substr(i);
  unit.erase(0, unit.find_first_not_of(' '));
  static const std::pair<const char*, double> kUnits[] = {
      {"", 1}, {"B", 1}, {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0},
      {"TiB", 1099511627776.0}};
  for (const auto& [name, mult] : kUnits) {
    if (unit != name) continue;
    if (!(value * mult < 18446744073709551616.0)) {  // 2^64: the cast would be undefined
      return Status::InvalidArgument("'" + text + "' is too large");
    }
    return static_cast<uint64_t>(value * mult);
  }
  return Status::InvalidArgument("'" + text + "' has an unknown unit (use B, KiB, MiB, GiB, TiB)");
}

Result<PoolOptions> ParsePoolOptions(std::string_view toml_text, std::string_view origin) {
  PoolOptions options;
  try {
    toml::table root = toml::parse(toml_text, origin);
    Status s = ReadPool(root, &options);
    if (!s.ok()) return s.WithContext(origin);
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    msg << origin << ":" << e.source().begin.line << ":" << e.source().begin.column << ": "
        << e.description();
    return Status::InvalidArgument(msg.str());
  }
  Status valid = options.Validate();
  if (!valid.ok()) return valid.WithContext(origin);
  return options;
}

Result<PoolOptions> LoadPoolOptions(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::InvalidArgument("config file '" + path + "' cannot be read");
  std::stringstream text;
  text << in.rdbuf();
  return ParsePoolOptions(text.str(), path);
}

}  // namespace kvpool
