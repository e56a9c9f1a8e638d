// OpenPool: one entry point for an in-process pool and a kvpoold connection.
#include <kvpool/client.h>

namespace kvpool {

Result<std::unique_ptr<Pool>> OpenPool(std::string_view target, const ClientOptions& client) {
  constexpr std::string_view kUnix = "unix:";
  if (target.substr(0, kUnix.size()) == kUnix) {
    ClientOptions options = client;
    options.address = std::string(target);
    KVP_ASSIGN_OR_RETURN(auto pool, ClientPool::Connect(options));
    return std::unique_ptr<Pool>(std::move(pool));
  }
  if (target.empty()) return Status::InvalidArgument("pool target is empty (a TOML path or unix:PATH)");
  KVP_ASSIGN_OR_RETURN(PoolOptions options, LoadPoolOptions(std::string(target)));
  return Pool::Open(options);
}

}  // namespace kvpool
