#include "util/errno_status.h"

#include <cerrno>
#include <cstring>
#include <string>

namespace kvpool {

Status ErrnoStatus(int err, std::string_view what) {
  std::string msg(what);
  msg += ": ";
  msg += std::strerror(err);
  switch (err) {
    case ENOSPC:
    case EDQUOT: return Status::NoSpace(std::move(msg));
    case EINVAL: return Status::InvalidArgument(std::move(msg));
    case ENOSYS:
    case EOPNOTSUPP: return Status::Unsupported(std::move(msg));
    default: return Status::IOError(std::move(msg));
  }
}

}  // namespace kvpool
