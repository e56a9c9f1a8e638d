// The embedded default configuration used when no --config is given.
#pragma once

#include <string>

#include <kvpool/options.h>

namespace kvpool::cli {

// TOML text of the default pool rooted at `state_dir`. The extent device is
// sized to a quarter of the free disk there, capped at 8 GiB; once its file
// exists, to what that file was formatted for.
std::string DefaultConfigToml(const std::string& state_dir);

// Parses --config PATH, or the default when `path` is empty.
Result<PoolOptions> LoadConfig(const std::string& path, const std::string& state_dir);

}  // namespace kvpool::cli
