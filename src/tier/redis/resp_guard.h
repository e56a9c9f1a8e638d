// Bounds what one reply from a Redis node may make the process allocate.
//
// hiredis 0.14 (Debian 12) callocs an array's element vector as soon as it
// reads the "*<count>" header, and buffers a bulk string or a line until it
// is complete. A node that is broken, or not Redis at all, could therefore
// make one 20-byte reply allocate gigabytes. RespGuard sees every byte before
// the reader does and refuses a stream that declares:
//   - more than kMaxReplyElements elements in one top-level reply (nested
//     arrays count towards their top-level reply's total);
//   - arrays nested deeper than kMaxReplyDepth;
//   - a bulk string over kMaxBulkBytes (Redis's own proto-max-bulk-len);
//   - a line (type byte to CRLF) over kMaxLineBytes;
//   - a type byte that RESP2 does not have, or a malformed length.
// The limits sit far above anything the redis device asks for (its largest
// reply is CLUSTER SLOTS: at most 16384 ranges of a few nodes each).
//
// The guard is a streaming RESP2 tokenizer: Scan() may be handed the stream
// in pieces of any size. After an error the stream is unusable (the caller
// closes the connection); Reset() starts a new one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <kvpool/status.h>

namespace kvpool::redis {

inline constexpr uint64_t kMaxReplyElements = uint64_t{1} << 20;
inline constexpr size_t kMaxReplyDepth = 7;
inline constexpr uint64_t kMaxBulkBytes = uint64_t{512} << 20;
inline constexpr size_t kMaxLineBytes = 64 * 1024;

class RespGuard {
 public:
  // Checks the next `bytes` of the stream. Corruption naming the limit or
  // the malformed token; the first error sticks until Reset().
  Status Scan(std::string_view bytes);
  void Reset();

 private:
  enum class State { kType, kLine, kBulkBody };

  Status EndOfLine();
  Status Header(char type, std::string_view digits);
  Status ElementDone();
  Status Refuse(std::string message);

  State state_ = State::kType;
  char type_ = 0;
  std::string line_;                // the current line, without the type byte
  uint64_t bulk_left_ = 0;          // payload bytes plus CRLF still to skip
  std::vector<uint64_t> pending_;   // elements still due, per open array
  uint64_t reply_elements_ = 0;     // declared so far in this top-level reply
  Status error_;
};

}  // namespace kvpool::redis
