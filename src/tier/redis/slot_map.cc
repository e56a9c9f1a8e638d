#include "tier/redis/slot_map.h"

#include <hiredis/hiredis.h>

#include <charconv>

namespace kvpool::redis {
namespace {

// A decimal number in [lo, hi]; nullopt for anything else (sign, spaces, overflow).
std::optional<uint32_t> ParseNumber(std::string_view text, uint32_t lo, uint32_t hi) {
  uint32_t value = 0;
  if (text.empty() || text.size() > 10) return std::nullopt;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  if (value < lo || value > hi) return std::nullopt;
  return value;
}

std::string_view ReplyText(const redisReply* r) {
  if (r->str == nullptr) return {};
  return std::string_view(r->str, r->len);
}

bool IsString(const redisReply* r) {
  return r != nullptr && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

// The element array of an array reply, or nullptr when it is not one.
redisReply* const* Elements(const redisReply* r, size_t min_count) {
  if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements < min_count) return nullptr;
  if (r->elements > 0 && r->element == nullptr) return nullptr;
  return r->element;
}

std::optional<uint16_t> SlotNumber(const redisReply* r) {
  if (r == nullptr || r->type != REDIS_REPLY_INTEGER) return std::nullopt;
  if (r->integer < 0 || r->integer >= kClusterSlots) return std::nullopt;
  return static_cast<uint16_t>(r->integer);
}

enum class Endpoint : uint8_t { kOk, kUnknown, kBad };

// One node entry of a slot range: [host, port, id?, metadata?].
Endpoint ParseNode(const redisReply* r, const HostPort& from, HostPort* out) {
  redisReply* const* e = Elements(r, 2);
  if (e == nullptr || !IsString(e[0]) || e[1] == nullptr || e[1]->type != REDIS_REPLY_INTEGER) {
    return Endpoint::kBad;
  }
  const std::string_view host = ReplyText(e[0]);
  if (host == "?") return Endpoint::kUnknown;
  if (e[1]->integer < 1 || e[1]->integer > 65535) return Endpoint::kBad;
  out->host = host.empty() ? from.host : std::string(host);
  out->port = static_cast<uint16_t>(e[1]->integer);
  return Endpoint::kOk;
}

}  // namespace

std::string HostPort::ToString() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

Result<HostPort> ParseHostPort(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return Status::InvalidArgument("bad node address '" + std::string(text) + "': " + std::string(why));
  };
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return bad("expected host:port");
  std::string_view host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return bad("an IPv6 address goes in brackets, [addr]:port");
  }
  if (host.empty()) return bad("empty host");
  const auto port = ParseNumber(text.substr(colon + 1), 1, 65535);
  if (!port) return bad("port must be a number in 1..65535");
  return HostPort{std::string(host), static_cast<uint16_t>(*port)};
}

Result<std::vector<SlotRange>> ParseClusterSlots(const redisReply* reply, const HostPort& from) {
  auto bad = [&](std::string why) {
    return Status::IOError(from.ToString() + ": bad CLUSTER SLOTS reply: " + why);
  };
  if (reply != nullptr && reply->type == REDIS_REPLY_ERROR) {
    return Status::IOError(from.ToString() + ": CLUSTER SLOTS failed: " + std::string(ReplyText(reply)));
  }
  redisReply* const* ranges = Elements(reply, 0);
  if (ranges == nullptr) return bad("not an array");
  std::vector<SlotRange> out;
  for (size_t i = 0; i < reply->elements; ++i) {
    const redisReply* entry = ranges[i];
    redisReply* const* e = Elements(entry, 3);
    if (e == nullptr) return bad("entry " + std::to_string(i) + " is not an array of 3 or more");
    const auto first = SlotNumber(e[0]);
    const auto last = SlotNumber(e[1]);
    if (!first || !last || *first > *last) {
      return bad("entry " + std::to_string(i) + " has no valid slot range");
    }
    SlotRange range;
    range.first = *first;
    range.last = *last;
    const Endpoint master = ParseNode(e[2], from, &range.master);
    if (master == Endpoint::kBad) return bad("entry " + std::to_string(i) + " has a bad master");
    if (master == Endpoint::kUnknown) continue;
    for (size_t j = 3; j < entry->elements; ++j) {
      HostPort replica;
      const Endpoint r = ParseNode(e[j], from, &replica);
      if (r == Endpoint::kBad) return bad("entry " + std::to_string(i) + " has a bad replica");
      if (r == Endpoint::kOk) range.replicas.push_back(std::move(replica));
    }
    out.push_back(std::move(range));
  }
  if (out.empty()) return bad("no slot range with a known master");
  return out;
}

std::optional<Redirect> ParseRedirect(std::string_view error, const HostPort& from) {
  Redirect r;
  if (error.starts_with("MOVED ")) {
    r.kind = Redirect::Kind::kMoved;
    error.remove_prefix(6);
  } else if (error.starts_with("ASK ")) {
    r.kind = Redirect::Kind::kAsk;
    error.remove_prefix(4);
  } else {
    return std::nullopt;
  }
  const size_t space = error.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  const auto slot = ParseNumber(error.substr(0, space), 0, kClusterSlots - 1);
  if (!slot) return std::nullopt;
  r.slot = static_cast<uint16_t>(*slot);
  std::string_view addr = error.substr(space + 1);
  std::string with_host;
  if (addr.starts_with(":")) {  // Redis 7: the endpoint is the node that answered
    with_host = (from.host.find(':') != std::string::npos ? "[" + from.host + "]" : from.host);
    with_host.append(addr);
    addr = with_host;
  }
  auto target = ParseHostPort(addr);
  if (!target.ok()) return std::nullopt;
  r.target = std::move(*target);
  return r;
}

void SlotMap::SetRange(uint16_t first, uint16_t last, uint16_t node) {
  for (uint32_t s = first; s <= last; ++s) nodes_[s] = node;
}

uint32_t SlotMap::covered() const {
  uint32_t n = 0;
  for (uint16_t v : nodes_) n += v != kNoNode;
  return n;
}

}  // namespace kvpool::redis
