// What a RetrieveHandle or OffloadHandle waits on. The pool's own requests
// (core/requests.h) and the daemon client's (client/) implement these, so one
// pair of handle types serves both an in-process pool and kvpoold.
#pragma once

#include <cstddef>

#include <kvpool/result.h>

namespace kvpool::internal {

class RetrieveCompletion {
 public:
  virtual ~RetrieveCompletion() = default;
  // The contracts of RetrieveHandle's methods of the same names.
  virtual Result<size_t> Wait() = 0;
  virtual bool Done() const = 0;
  virtual double ElapsedSeconds() const = 0;
  virtual Status error() const = 0;
};

class OffloadCompletion {
 public:
  virtual ~OffloadCompletion() = default;
  // The contracts of OffloadHandle's methods of the same names.
  virtual Result<size_t> Wait() = 0;
  virtual bool Done() const = 0;
};

}  // namespace kvpool::internal
