// Stop strings and UTF-8 over a stream of token pieces.
//
// A token's bytes may end inside a UTF-8 character, and a stop string may
// span several tokens. StopMatcher takes the raw pieces in order and returns
// only text that can no longer change:
//   - an incomplete UTF-8 sequence at the end is held until it completes;
//   - the longest tail that is a proper prefix of some stop string is held
//     until the next bytes confirm or refute the match;
//   - when a stop string matches, the text before it is returned, and the
//     stop string and everything after it never are.
// Every returned string is valid UTF-8: bytes that can never form a valid
// character (a stray continuation byte, an overlong form, a surrogate) are
// replaced by U+FFFD, one per maximal invalid subpart (as the Unicode
// standard recommends).
//
// Not thread-safe; one matcher per generation.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace kvpool::serve {

// Replacement character, UTF-8 encoded.
inline constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";

// `bytes` with every invalid or incomplete UTF-8 sequence replaced by U+FFFD.
std::string SanitizeUtf8(std::string_view bytes);

// How many leading bytes of `bytes` are safe to emit without splitting a
// character: all of them, except a trailing sequence that is a valid but
// unfinished prefix of a character (at most 3 bytes).
size_t CompleteUtf8Prefix(std::string_view bytes);

class StopMatcher {
 public:
  struct Output {
    std::string text;      // safe to emit now (valid UTF-8, possibly empty)
    bool stopped = false;  // a stop string matched; the generation is over
  };

  // Empty strings in `stops` are ignored (they would match before any text).
  explicit StopMatcher(std::vector<std::string> stops);

  // Appends the bytes of the next token. After a match, returns an empty,
  // stopped Output and ignores `piece`.
  Output Feed(std::string_view piece);

  // End of generation (end-of-generation token, length limit): returns the
  // held text. A held incomplete UTF-8 tail becomes one U+FFFD. After a
  // match, returns "". Leaves the matcher empty.
  std::string Finish();

  bool stopped() const { return stopped_; }
  // The stop string that matched; "" until one did.
  const std::string& matched_stop() const { return matched_stop_; }
  // Bytes currently held back.
  size_t held_bytes() const { return held_.size(); }

 private:
  // Position of the earliest complete match in held_, and which stop.
  bool FindMatch(size_t* position, size_t* stop_index) const;
  // Length of the longest suffix of held_ that is a proper prefix of a stop.
  size_t PartialMatchLength() const;
  // Removes and returns held_[0, n) as valid UTF-8.
  std::string Release(size_t n);

  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
  std::string matched_stop_;
};

}  // namespace kvpool::serve
