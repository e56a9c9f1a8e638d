#include "stop_matcher.h"

#include <algorithm>
#include <cstdint>
#include <utility>

namespace kvpool::serve {
namespace {

// What starts at one byte offset of a UTF-8 string.
struct Utf8Char {
  enum class Kind { kValid, kIncomplete, kInvalid };
  Kind kind;
  size_t length;  // bytes of the character, of the valid unfinished prefix,
                  // or of the maximal invalid subpart (at least 1)
};

// The byte range the second byte of a sequence led by `lead` may take
// (Unicode Table 3-7), and the sequence's length; length 0: not a lead byte.
struct LeadByte {
  size_t length;
  uint8_t second_min;
  uint8_t second_max;
};

LeadByte ClassifyLead(uint8_t lead) {
  if (lead >= 0xC2 && lead <= 0xDF) return {2, 0x80, 0xBF};
  if (lead == 0xE0) return {3, 0xA0, 0xBF};
  if (lead == 0xED) return {3, 0x80, 0x9F};  // no surrogates
  if (lead >= 0xE1 && lead <= 0xEF) return {3, 0x80, 0xBF};
  if (lead == 0xF0) return {4, 0x90, 0xBF};
  if (lead >= 0xF1 && lead <= 0xF3) return {4, 0x80, 0xBF};
  if (lead == 0xF4) return {4, 0x80, 0x8F};  // up to U+10FFFF
  return {0, 0, 0};
}

Utf8Char ScanChar(std::string_view s, size_t i) {
  const auto lead = static_cast<uint8_t>(s[i]);
  if (lead < 0x80) return {Utf8Char::Kind::kValid, 1};
  const LeadByte info = ClassifyLead(lead);
  if (info.length == 0) return {Utf8Char::Kind::kInvalid, 1};
  for (size_t k = 1; k < info.length; ++k) {
    if (i + k >= s.size()) return {Utf8Char::Kind::kIncomplete, k};
    const auto b = static_cast<uint8_t>(s[i + k]);
    const uint8_t lo = k == 1 ? info.second_min : uint8_t{0x80};
    const uint8_t hi = k == 1 ? info.second_max : uint8_t{0xBF};
    if (b < lo || b > hi) return {Utf8Char::Kind::kInvalid, k};
  }
  return {Utf8Char::Kind::kValid, info.length};
}

}  // namespace

std::string SanitizeUtf8(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t i = 0;
  while (i < bytes.size()) {
    const Utf8Char c = ScanChar(bytes, i);
    if (c.kind == Utf8Char::Kind::kValid) {
      out.append(bytes.substr(i, c.length));
    } else {
      out.append(kReplacementCharacter);
    }
    i += c.length;
  }
  return out;
}

size_t CompleteUtf8Prefix(std::string_view bytes) {
  // An unfinished character starts at most 3 bytes before the end.
  const size_t from = bytes.size() > 3 ? bytes.size() - 3 : 0;
  for (size_t i = from; i < bytes.size(); ++i) {
    const auto b = static_cast<uint8_t>(bytes[i]);
    if (b < 0xC0) continue;  // ASCII or a continuation byte: not a lead
    const Utf8Char c = ScanChar(bytes, i);
    if (c.kind == Utf8Char::Kind::kIncomplete && i + c.length == bytes.size()) return i;
  }
  return bytes.size();
}

StopMatcher::StopMatcher(std::vector<std::string> stops) {
  for (std::string& s : stops) {
    if (!s.empty()) stops_.push_back(std::move(s));
  }
}

bool StopMatcher::FindMatch(size_t* position, size_t* stop_index) const {
  bool found = false;
  for (size_t k = 0; k < stops_.size(); ++k) {
    const size_t at = held_.find(stops_[k]);
    if (at != std::string::npos && (!found || at < *position)) {
      found = true;
      *position = at;
      *stop_index = k;
    }
  }
  return found;
}

size_t StopMatcher::PartialMatchLength() const {
  const std::string_view held(held_);
  size_t longest = 0;
  for (const std::string& stop : stops_) {
    const size_t max_len = std::min(stop.size() - 1, held.size());
    for (size_t len = max_len; len > longest; --len) {
      if (stop.compare(0, len, held.substr(held.size() - len)) == 0) {
        longest = len;
        break;
      }
    }
  }
  return longest;
}

std::string StopMatcher::Release(size_t n) {
  std::string out = SanitizeUtf8(std::string_view(held_).substr(0, n));
  held_.erase(0, n);
  return out;
}

StopMatcher::Output StopMatcher::Feed(std::string_view piece) {
  if (stopped_) return {"", true};
  held_.append(piece);
  size_t position = 0;
  size_t stop_index = 0;
  if (FindMatch(&position, &stop_index)) {
    stopped_ = true;
    matched_stop_ = stops_[stop_index];
    Output out{Release(position), true};
    held_.clear();
    return out;
  }
  const size_t safe =
      std::min(held_.size() - PartialMatchLength(), CompleteUtf8Prefix(held_));
  return {Release(safe), false};
}

std::string StopMatcher::Finish() {
  if (stopped_) return "";
  return Release(held_.size());
}

}  // namespace kvpool::serve
