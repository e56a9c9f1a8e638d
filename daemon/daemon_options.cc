#include "daemon_options.h"

#include <toml++/toml.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <sstream>

namespace kvpool::daemon {
namespace {

Status Bad(const std::string& field, const std::string& what) {
  return Status::InvalidArgument("daemon." + field + " " + what);
}

Status ReadBytes(const toml::node* node, const std::string& field, uint64_t* out) {
  if (node == nullptr) return Status::OK();
  if (auto v = node->value_exact<int64_t>(); v && *v >= 0) return *out = static_cast<uint64_t>(*v), Status::OK();
  if (auto s = node->value_exact<std::string>()) {
    auto r = ParseByteSize(*s);
    if (!r.ok()) return Bad(field, r.status().message());
    *out = *r;
    return Status::OK();
  }
  return Bad(field, "must be a byte count or a size string such as \"4GiB\"");
}

template <typename T>
Status ReadUint(const toml::node* node, const std::string& field, T* out) {
  if (node == nullptr) return Status::OK();
  auto v = node->value_exact<int64_t>();
  if (!v || *v < 0 || static_cast<uint64_t>(*v) > std::numeric_limits<T>::max()) {
    return Bad(field, "must be a non-negative integer in range");
  }
  *out = static_cast<T>(*v);
  return Status::OK();
}

Status ReadString(const toml::node* node, const std::string& field, std::string* out) {
  if (node == nullptr) return Status::OK();
  auto v = node->value_exact<std::string>();
  if (!v) return Bad(field, "must be a string");
  *out = *v;
  return Status::OK();
}

template <typename T>
Status ReadIds(const toml::node* node, const std::string& field, std::vector<T>* out) {
  if (node == nullptr) return Status::OK();
  const toml::array* a = node->as_array();
  if (a == nullptr) return Bad(field, "must be an array of integers");
  out->clear();
  for (size_t i = 0; i < a->size(); ++i) {
    T id{};
    KVP_RETURN_IF_ERROR(ReadUint(a->get(i), field + "[" + std::to_string(i) + "]", &id));
    out->push_back(id);
  }
  return Status::OK();
}

Status RejectUnknown(const toml::table& t, const std::set<std::string>& known, const std::string& where) {
  for (const auto& [k, v] : t) {
    if (!known.count(std::string(k.str()))) {
      return Status::InvalidArgument(where + "." + std::string(k.str()) + " is not a known option");
    }
  }
  return Status::OK();
}

Status ReadTenant(const toml::table& t, size_t index, TenantOptions* out) {
  const std::string field = "tenant[" + std::to_string(index) + "]";
  KVP_RETURN_IF_ERROR(RejectUnknown(t, {"name", "uids", "gids", "quota"}, "daemon." + field));
  KVP_RETURN_IF_ERROR(ReadString(t.get("name"), field + ".name", &out->name));
  KVP_RETURN_IF_ERROR(ReadIds(t.get("uids"), field + ".uids", &out->uids));
  KVP_RETURN_IF_ERROR(ReadIds(t.get("gids"), field + ".gids", &out->gids));
  return ReadBytes(t.get("quota"), field + ".quota", &out->quota_bytes);
}

Status ReadDaemon(const toml::table& t, DaemonOptions* o) {
  KVP_RETURN_IF_ERROR(RejectUnknown(t, {"socket", "socket_mode", "metrics", "max_clients", "max_region",
                                        "max_inflight", "admin_uids", "tenant"},
                                    "daemon"));
  KVP_RETURN_IF_ERROR(ReadString(t.get("socket"), "socket", &o->socket_path));
  KVP_RETURN_IF_ERROR(ReadUint(t.get("socket_mode"), "socket_mode", &o->socket_mode));
  KVP_RETURN_IF_ERROR(ReadString(t.get("metrics"), "metrics", &o->metrics_address));
  KVP_RETURN_IF_ERROR(ReadUint(t.get("max_clients"), "max_clients", &o->max_clients));
  KVP_RETURN_IF_ERROR(ReadBytes(t.get("max_region"), "max_region", &o->max_region_bytes));
  KVP_RETURN_IF_ERROR(ReadUint(t.get("max_inflight"), "max_inflight", &o->max_inflight));
  KVP_RETURN_IF_ERROR(ReadIds(t.get("admin_uids"), "admin_uids", &o->admin_uids));
  if (const toml::node* tenants = t.get("tenant")) {
    const toml::array* a = tenants->as_array();
    if (a == nullptr) return Bad("tenant", "must be an array of tables ([[daemon.tenant]])");
    for (size_t i = 0; i < a->size(); ++i) {
      const toml::table* tt = a->get(i)->as_table();
      if (tt == nullptr) return Bad("tenant[" + std::to_string(i) + "]", "must be a table");
      TenantOptions tenant;
      KVP_RETURN_IF_ERROR(ReadTenant(*tt, i, &tenant));
      o->tenants.push_back(std::move(tenant));
    }
  }
  return Status::OK();
}

}  // namespace

Status DaemonOptions::Validate() const {
  if (socket_path.empty()) return Bad("socket", "is required (e.g. \"/run/kvpool/kvpoold.sock\")");
  if (socket_mode > 0777) return Bad("socket_mode", "must be a permission mode such as 0o660");
  if (max_clients == 0) return Bad("max_clients", "must be at least 1");
  if (max_inflight == 0) return Bad("max_inflight", "must be at least 1");
  if (max_region_bytes == 0) return Bad("max_region", "must be positive");
  std::set<std::string> names;
  for (size_t i = 0; i < tenants.size(); ++i) {
    const std::string field = "tenant[" + std::to_string(i) + "]";
    if (tenants[i].name.empty()) return Bad(field + ".name", "is required");
    if (!names.insert(tenants[i].name).second) return Bad(field + ".name", "'" + tenants[i].name + "' is repeated");
    if (tenants[i].uids.empty() && tenants[i].gids.empty()) {
      return Bad(field, "allows nobody: give uids or gids");
    }
  }
  return pool.Validate();
}

Result<DaemonOptions> ParseDaemonOptions(std::string_view toml_text, std::string_view origin) {
  DaemonOptions options;
  std::string pool_text;
  try {
    toml::table root = toml::parse(toml_text, origin);
    if (const toml::node* d = root.get("daemon")) {
      const toml::table* t = d->as_table();
      if (t == nullptr) return Status::InvalidArgument(std::string(origin) + ": [daemon] must be a table");
      Status s = ReadDaemon(*t, &options);
      if (!s.ok()) return s.WithContext(origin);
      root.erase("daemon");
    }
    std::ostringstream rest;
    rest << root;
    pool_text = rest.str();
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    msg << origin << ":" << e.source().begin.line << ":" << e.source().begin.column << ": " << e.description();
    return Status::InvalidArgument(msg.str());
  }
  KVP_ASSIGN_OR_RETURN(options.pool, ParsePoolOptions(pool_text, origin));
  if (options.tenants.empty()) options.tenants.push_back(TenantOptions{"default", {getuid()}, {}, 0});
  Status valid = options.Validate();
  if (!valid.ok()) return valid.WithContext(origin);
  return options;
}

Result<DaemonOptions> LoadDaemonOptions(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::InvalidArgument("config file '" + path + "' cannot be read");
  std::stringstream text;
  text << in.rdbuf();
  return ParseDaemonOptions(text.str(), path);
}

}  // namespace kvpool::daemon
