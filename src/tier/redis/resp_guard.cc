#include "tier/redis/resp_guard.h"

#include <charconv>

namespace kvpool::redis {
namespace {

std::string Hex(uint8_t byte) {
  static constexpr char kDigits[] = "0123456789abcdef";
  return std::string{'0', 'x', kDigits[byte >> 4], kDigits[byte & 15]};
}

bool IsRespType(char c) { return c == '+' || c == '-' || c == ':' || c == '$' || c == '*'; }

// A length field: "-1" (nil) or decimal digits without sign or spaces.
bool ParseLength(std::string_view digits, int64_t* out) {
  if (digits == "-1") {
    *out = -1;
    return true;
  }
  if (digits.empty() || digits.size() > 19) return false;
  uint64_t v = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (ec != std::errc() || end != digits.data() + digits.size()) return false;
  *out = static_cast<int64_t>(v);
  return v <= static_cast<uint64_t>(INT64_MAX);
}

}  // namespace

void RespGuard::Reset() { *this = RespGuard(); }

Status RespGuard::Refuse(std::string message) {
  error_ = Status::Corruption("reply refused: " + std::move(message));
  return error_;
}

Status RespGuard::Scan(std::string_view bytes) {
  KVP_RETURN_IF_ERROR(error_);
  size_t i = 0;
  while (i < bytes.size()) {
    switch (state_) {
      case State::kType:
        type_ = bytes[i++];
        if (!IsRespType(type_)) {
          return Refuse("unknown type byte " + Hex(static_cast<uint8_t>(type_)));
        }
        line_.clear();
        state_ = State::kLine;
        break;
      case State::kLine: {
        const size_t lf = bytes.find('\n', i);
        const size_t end = lf == std::string_view::npos ? bytes.size() : lf + 1;
        line_.append(bytes.substr(i, end - i));
        i = end;
        if (line_.size() > kMaxLineBytes + 2) {
          return Refuse("a line over " + std::to_string(kMaxLineBytes) + " bytes");
        }
        if (lf != std::string_view::npos && line_.size() >= 2 && line_[line_.size() - 2] == '\r') {
          KVP_RETURN_IF_ERROR(EndOfLine());
        }
        break;
      }
      case State::kBulkBody: {
        const uint64_t take = std::min<uint64_t>(bulk_left_, bytes.size() - i);
        bulk_left_ -= take;
        i += take;
        if (bulk_left_ == 0) {
          state_ = State::kType;
          KVP_RETURN_IF_ERROR(ElementDone());
        }
        break;
      }
    }
  }
  return Status::OK();
}

Status RespGuard::EndOfLine() {
  const std::string_view text(line_.data(), line_.size() - 2);
  state_ = State::kType;
  if (type_ == '$' || type_ == '*') return Header(type_, text);
  return ElementDone();  // status, error or integer: complete with its line
}

Status RespGuard::Header(char type, std::string_view digits) {
  int64_t n = 0;
  if (!ParseLength(digits, &n)) {
    return Refuse(std::string("malformed length '") + std::string(digits.substr(0, 32)) + "' after '" +
                  type + "'");
  }
  if (type == '$') {
    if (n < 0) return ElementDone();  // nil bulk string
    if (static_cast<uint64_t>(n) > kMaxBulkBytes) {
      return Refuse("a bulk string of " + std::to_string(n) + " bytes (limit " +
                    std::to_string(kMaxBulkBytes) + ")");
    }
    bulk_left_ = static_cast<uint64_t>(n) + 2;  // the payload and its CRLF
    state_ = State::kBulkBody;
    return Status::OK();
  }
  if (n <= 0) return ElementDone();  // nil or empty array
  reply_elements_ += static_cast<uint64_t>(n);
  if (reply_elements_ > kMaxReplyElements) {
    return Refuse("a reply of over " + std::to_string(kMaxReplyElements) + " elements");
  }
  if (pending_.size() >= kMaxReplyDepth) {
    return Refuse("arrays nested deeper than " + std::to_string(kMaxReplyDepth));
  }
  pending_.push_back(static_cast<uint64_t>(n));
  return Status::OK();
}

Status RespGuard::ElementDone() {
  while (!pending_.empty()) {
    if (--pending_.back() > 0) return Status::OK();
    pending_.pop_back();  // that array is complete: one element of its parent
  }
  reply_elements_ = 0;  // a top-level reply is complete
  return Status::OK();
}

}  // namespace kvpool::redis
