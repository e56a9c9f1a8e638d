#include "util/log.h"

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>

namespace kvpool::log {
namespace {

Level LevelFromEnv() {
  const char* env = std::getenv("KVPOOL_LOG");
  if (env == nullptr) return Level::kWarn;
  std::string v(env);
  if (v == "debug") return Level::kDebug;
  if (v == "info") return Level::kInfo;
  if (v == "error") return Level::kError;
  if (v == "off") return Level::kOff;
  return Level::kWarn;
}

const char* Tag(Level level) {
  switch (level) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warning";
    case Level::kError: return "error";
    default: return "";
  }
}

}  // namespace

bool Enabled(Level level) {
  static const Level threshold = LevelFromEnv();
  return level >= threshold && level != Level::kOff;
}

void Write(Level level, std::string_view message) {
  if (!Enabled(level)) return;
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  std::fprintf(stderr, "kvpool %s: %.*s\n", Tag(level), static_cast<int>(message.size()),
               message.data());
}

}  // namespace kvpool::log
