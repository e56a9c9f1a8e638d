#include "tier/redis/reply.h"

#include <hiredis/hiredis.h>

#include <utility>

namespace kvpool::redis {

ReplyView::Kind ReplyView::kind() const {
  if (r_ == nullptr) return Kind::kNone;
  switch (r_->type) {
    case REDIS_REPLY_STRING: return Kind::kString;
    case REDIS_REPLY_STATUS: return Kind::kStatus;
    case REDIS_REPLY_INTEGER: return Kind::kInteger;
    case REDIS_REPLY_NIL: return Kind::kNil;
    case REDIS_REPLY_ARRAY: return Kind::kArray;
    case REDIS_REPLY_ERROR: return Kind::kError;
    default: return Kind::kNone;
  }
}

std::string_view ReplyView::str() const {
  const Kind k = kind();
  if (k != Kind::kString && k != Kind::kStatus && k != Kind::kError) return {};
  return r_->str == nullptr ? std::string_view() : std::string_view(r_->str, r_->len);
}

long long ReplyView::integer() const { return kind() == Kind::kInteger ? r_->integer : 0; }

size_t ReplyView::size() const {
  return kind() == Kind::kArray && r_->element != nullptr ? r_->elements : 0;
}

ReplyView ReplyView::operator[](size_t i) const {
  return i < size() ? ReplyView(r_->element[i]) : ReplyView();
}

Reply::Reply(Reply&& o) noexcept : reply_(o.reply_), status_(std::move(o.status_)) {
  o.reply_ = nullptr;
  o.status_ = Status::OK();
}

Reply& Reply::operator=(Reply&& o) noexcept {
  if (this != &o) {
    Reset();
    reply_ = o.reply_;
    status_ = std::move(o.status_);
    o.reply_ = nullptr;
    o.status_ = Status::OK();
  }
  return *this;
}

Reply::~Reply() { Reset(); }

void Reply::Reset() {
  if (reply_ != nullptr) freeReplyObject(reply_);
  reply_ = nullptr;
  status_ = Status::OK();
}

void Reply::Set(redisReply* reply, Status status) {
  Reset();
  reply_ = reply;
  status_ = std::move(status);
}

}  // namespace kvpool::redis
