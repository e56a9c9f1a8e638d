// RespGuard (src/tier/redis/resp_guard.h): the replies Redis sends pass, in
// pieces of any size; the ones that would make hiredis allocate without
// bound are refused by name, and a refusal sticks until Reset().
#include <gtest/gtest.h>

#include <string>

#include "tier/redis/resp_guard.h"

namespace kvpool::redis {
namespace {

// A CLUSTER SLOTS reply of two ranges, then a GET hit, a nil, OK, an integer
// and a MOVED error: what the redis device reads.
const std::string kStream =
    "*2\r\n"
    "*3\r\n:0\r\n:8191\r\n*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n$40\r\n"
    "0123456789012345678901234567890123456789\r\n"
    "*3\r\n:8192\r\n:16383\r\n*2\r\n$9\r\n127.0.0.1\r\n:7001\r\n"
    "$5\r\nab\r\nc\r\n$-1\r\n+OK\r\n:42\r\n-MOVED 3999 127.0.0.1:7002\r\n*0\r\n*-1\r\n";

TEST(RespGuard, AcceptsWhatRedisSendsInAnySplit) {
  RespGuard whole;
  ASSERT_TRUE(whole.Scan(kStream).ok());
  for (size_t piece : {1u, 2u, 3u, 7u, 64u}) {
    RespGuard guard;
    for (size_t i = 0; i < kStream.size(); i += piece) {
      ASSERT_TRUE(guard.Scan(std::string_view(kStream).substr(i, piece)).ok())
          << "piece " << piece << " at " << i;
    }
  }
}

Status ScanAll(const std::string& stream) {
  RespGuard guard;
  return guard.Scan(stream);
}

void ExpectRefused(const std::string& stream, const std::string& why) {
  const Status s = ScanAll(stream);
  EXPECT_EQ(s.code(), StatusCode::kCorruption) << stream.substr(0, 40);
  EXPECT_NE(s.message().find(why), std::string::npos) << s.message();
}

TEST(RespGuard, RefusesAnArrayHeaderOverTheElementLimit) {
  // The finding: hiredis callocs 463369633 pointers (3.7 GB) for this header.
  ExpectRefused("*463369633\r\n", "elements");
  ExpectRefused("*" + std::to_string(kMaxReplyElements + 1) + "\r\n", "elements");
  EXPECT_TRUE(ScanAll("*" + std::to_string(kMaxReplyElements) + "\r\n").ok());
}

TEST(RespGuard, NestedArraysCountTowardsTheirTopLevelReply) {
  // 2 + 2 x (limit / 2) declared elements: over the limit only in total.
  const std::string half = "*" + std::to_string(kMaxReplyElements / 2) + "\r\n";
  std::string ints;
  for (uint64_t i = 0; i < kMaxReplyElements / 2; ++i) ints += ":1\r\n";
  ExpectRefused("*2\r\n" + half + ints + half, "elements");
  // Replies that complete reset the count: many of them may follow.
  RespGuard guard;
  const std::string big = "*4\r\n:1\r\n:2\r\n:3\r\n:4\r\n";
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(guard.Scan(big).ok());
}

TEST(RespGuard, RefusesDeepNestingLongLinesAndHugeBulks) {
  std::string deep;
  for (size_t i = 0; i <= kMaxReplyDepth; ++i) deep += "*1\r\n";
  ExpectRefused(deep, "nested");
  ExpectRefused("+" + std::string(kMaxLineBytes + 10, 'x'), "line over");
  ExpectRefused("$" + std::to_string(kMaxBulkBytes + 1) + "\r\n", "bulk string");
  EXPECT_TRUE(ScanAll("$" + std::to_string(kMaxBulkBytes) + "\r\n").ok());
}

TEST(RespGuard, RefusesMalformedTokensByName) {
  ExpectRefused("%3\r\n", "unknown type byte 0x25");
  ExpectRefused("$abc\r\n", "malformed length 'abc' after '$'");
  ExpectRefused("*-2\r\n", "malformed length '-2'");
  ExpectRefused("$ 5\r\n", "malformed length");
  ExpectRefused("*99999999999999999999\r\n", "malformed length");
}

TEST(RespGuard, ARefusalSticksUntilReset) {
  RespGuard guard;
  ASSERT_FALSE(guard.Scan("?\r\n").ok());
  EXPECT_FALSE(guard.Scan("+OK\r\n").ok());
  guard.Reset();
  EXPECT_TRUE(guard.Scan("+OK\r\n").ok());
}

}  // namespace
}  // namespace kvpool::redis
