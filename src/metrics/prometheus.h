// The Prometheus text exposition format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/), and the
// pool's families in it: shared by kvpool serve's and kvpoold's /metrics.
//
// Every family has # HELP and # TYPE lines; counters end in _total;
// quantities are in base units (bytes, seconds, bytes per second). The pool's
// families are kvpool_pool_*; per-device ones carry the labels device, kind
// and role.
#pragma once

#include <string>
#include <string_view>

#include <kvpool/pool.h>

namespace kvpool::metrics {

// The content type of an exposition.
inline constexpr const char* kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

std::string FormatValue(double v);
std::string FormatValue(uint64_t v);

// A label value as the format writes it: backslash, double quote and line
// feed escaped as \\, \" and \n.
std::string EscapeLabelValue(std::string_view value);

// Appends families to one exposition text.
class Exposition {
 public:
  void Family(std::string_view name, std::string_view type, std::string_view help);
  template <typename V>
  void Sample(std::string_view name, std::string_view labels, V value) {
    text_.append(name);
    if (!labels.empty()) text_.append("{").append(labels).append("}");
    text_.append(" ").append(FormatValue(value)).append("\n");
  }
  // A family with one unlabelled sample.
  template <typename V>
  void Single(std::string_view name, std::string_view type, std::string_view help, V value) {
    Family(name, type, help);
    Sample(name, "", value);
  }
  std::string Take() { return std::move(text_); }

 private:
  std::string text_;
};

// The pool-wide and per-device families of `p`.
void AddPoolFamilies(Exposition& e, const PoolStats& p);

}  // namespace kvpool::metrics
