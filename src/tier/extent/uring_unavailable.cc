// Built instead of uring_queue.cc when liburing was not found at configure
// time: the "uring" engine reports Unsupported and names the alternative.
#include "tier/extent/raw_queue.h"

namespace kvpool {

Status CheckUringAvailable(const std::string& what) {
  return Status::Unsupported(what +
                             ": this kvpool was built without liburing; set engine = "
                             "\"psync\" (or install liburing-dev and rebuild)");
}

Result<std::unique_ptr<RawQueue>> NewUringQueue(const EngineConfig& config, BufferArena arena) {
  (void)arena;
  return CheckUringAvailable(config.what);
}

}  // namespace kvpool
