#include "core/hot_set.h"

#include <algorithm>

namespace kvpool {

CopySet::CopySet(uint32_t n, SlotReleaser* releaser)
    : layers(n), releaser_(releaser), segments_(new SegmentLoc[n]) {}

CopySet::~CopySet() {
  if (placed_ > 0 && releaser_ != nullptr) releaser_->ReleaseSegments(segments_.get(), placed_);
}

HotSet::HotSet(uint64_t capacity_chunks, double probation_fraction)
    : capacity_(capacity_chunks),
      probation_max_(capacity_chunks == 0
                         ? 0
                         : std::max<uint64_t>(1, static_cast<uint64_t>(
                                                     probation_fraction * capacity_chunks))),
      protected_max_(capacity_chunks - std::min(capacity_chunks, probation_max_)) {}

std::list<ChunkKey>& HotSet::ListOf(Segment s) {
  switch (s) {
    case Segment::kProbation:
      return probation_;
    case Segment::kProtected:
      return protected_;
    case Segment::kGhost:
      break;
  }
  return ghost_;
}

void HotSet::MoveTo(Map::iterator it, Segment to) {
  Entry& e = it->second;
  std::list<ChunkKey>& from = ListOf(e.segment);
  std::list<ChunkKey>& dest = ListOf(to);
  dest.splice(dest.begin(), from, e.pos);
  e.segment = to;
}

std::vector<HotSet::Access> HotSet::NoteRead(const std::vector<ChunkKey>& keys,
                                             size_t max_admit) {
  std::vector<Access> out(keys.size());
  std::lock_guard<std::mutex> lock(mu_);
  if (capacity_ == 0) return out;
  size_t admits_left = std::min<size_t>(max_admit, AdmitBudgetLocked());
  // Head chunks are worth the most (every longer prompt shares them): they
  // get admission first and end up most recent, so walk the prefix from the
  // tail and hand out admissions from the head afterwards.
  std::vector<bool> wants(keys.size(), false);
  for (size_t i = keys.size(); i-- > 0;) {
    auto it = entries_.find(keys[i]);
    if (it == entries_.end()) {
      ghost_.push_front(keys[i]);
      it = entries_.emplace(keys[i], Entry{Segment::kGhost, 0, nullptr, ghost_.begin()}).first;
    }
    Entry& e = it->second;
    ++e.reads;
    if (e.segment == Segment::kGhost) {
      MoveTo(it, Segment::kGhost);
      wants[i] = true;
      continue;
    }
    MoveTo(it, e.reads >= 2 ? Segment::kProtected : Segment::kProbation);
    if (e.copy && e.copy->ready.load(std::memory_order_acquire)) out[i].copy = e.copy;
  }
  for (size_t i = 0; i < keys.size() && admits_left > 0; ++i) {
    if (wants[i]) {
      out[i].admit = true;
      --admits_left;
    }
  }
  BalanceProtected();
  TrimGhosts();
  return out;
}

size_t HotSet::AdmitBudgetLocked() const {
  return std::max<uint64_t>(probation_max_, capacity_ - std::min(capacity_, copies_));
}

size_t HotSet::max_admit() const {
  std::lock_guard<std::mutex> lock(mu_);
  return AdmitBudgetLocked();
}

bool HotSet::EvictOne(std::vector<CopyRef>* dropped) {
  std::list<ChunkKey>& victims = !probation_.empty() ? probation_ : protected_;
  if (victims.empty()) return false;
  auto it = entries_.find(victims.back());
  dropped->push_back(std::move(it->second.copy));
  --copies_;
  MoveTo(it, Segment::kGhost);
  return true;
}

std::vector<CopyRef> HotSet::MakeRoom(size_t n) {
  std::vector<CopyRef> dropped;
  std::lock_guard<std::mutex> lock(mu_);
  while (copies_ + n > capacity_ && EvictOne(&dropped)) {
  }
  TrimGhosts();
  return dropped;
}

CopyRef HotSet::AttachCopy(const ChunkKey& key, CopyRef copy) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    ghost_.push_front(key);
    it = entries_.emplace(key, Entry{Segment::kGhost, 0, nullptr, ghost_.begin()}).first;
  }
  Entry& e = it->second;
  CopyRef old = std::move(e.copy);
  if (!old) ++copies_;
  e.copy = std::move(copy);
  MoveTo(it, e.reads >= 2 ? Segment::kProtected : Segment::kProbation);
  BalanceProtected();
  return old;
}

CopyRef HotSet::DropCopy(const ChunkKey& key, const CopySet* copy) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end() || it->second.copy.get() != copy || copy == nullptr) return nullptr;
  CopyRef out = std::move(it->second.copy);
  --copies_;
  MoveTo(it, Segment::kGhost);
  TrimGhosts();
  return out;
}

CopyRef HotSet::Forget(const ChunkKey& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return nullptr;
  CopyRef out = std::move(it->second.copy);
  if (out) --copies_;
  ListOf(it->second.segment).erase(it->second.pos);
  entries_.erase(it);
  return out;
}

void HotSet::BalanceProtected() {
  while (protected_.size() > protected_max_) {
    MoveTo(entries_.find(protected_.back()), Segment::kProbation);
  }
}

void HotSet::TrimGhosts() {
  // Remember about as many evicted keys as there are copies: enough to
  // recognise a chunk that comes back within one turn of the cache.
  const size_t limit = std::max<uint64_t>(capacity_, 64);
  while (ghost_.size() > limit) {
    entries_.erase(ghost_.back());
    ghost_.pop_back();
  }
}

bool HotSet::HasReadyCopy(const ChunkKey& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(key);
  return it != entries_.end() && it->second.copy &&
         it->second.copy->ready.load(std::memory_order_acquire);
}

HotSet::Counts HotSet::counts() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {probation_.size(), protected_.size(), ghost_.size(), copies_};
}

}  // namespace kvpool
