// The one place where a negative errno from the OS becomes a Status.
#pragma once

#include <string_view>

#include <kvpool/status.h>

namespace kvpool {

// `err` is a positive errno value. ENOSPC/EDQUOT map to NoSpace, EINVAL to
// InvalidArgument, ENOSYS/EOPNOTSUPP to Unsupported, everything else to IOError.
// The message is "<what>: <strerror(err)>".
Status ErrnoStatus(int err, std::string_view what);

}  // namespace kvpool
