// classify: the rules that need a stream's history. Duplicate posts (the same author,
// thread and normalised text within a rule's window) and repeat offenders (N removals
// of one author within a window add a route such as ban_review).
//
// One StreamState per ordered stream: a scan, or a Kafka partition. Results depend on
// order, so it is applied in stream order. Memory is bounded by `max_entries`.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include <absl/container/flat_hash_map.h>

#include "classify/classifier.h"

namespace civicsift {

class StreamState {
 public:
  explicit StreamState(size_t max_entries = 200'000) : max_entries_(max_entries) {}

  struct Post {
    std::string_view tenant, author, thread;
    uint32_t text_size = 0;
    int64_t ts_ms = kNoTime;  // kNoTime: now
    Direction direction = Direction::inbound;
  };

  // What apply() needs of a post once its verdict is known: hashes, so a parallel
  // scan computes them on the worker that holds the comment and applies them later,
  // in stream order, without copying the comment's fields.
  struct Key {
    uint64_t duplicate = 0;  // tenant, author, thread, normalised text; 0: not compared
    uint64_t author = 0;     // tenant, author (for repeat offenders)
    uint32_t text_size = 0;
    int64_t ts_ms = kNoTime;
    Direction direction = Direction::inbound;  // duplicate rules may apply to one direction only
    bool keeps_state = false;  // false: the policy keeps no state or the post has no author
  };
  static Key key(const Post& post, const Verdict& verdict);

  // Records the post and adds what the stateful rules conclude to its verdict.
  // Returns true when the verdict changed. Posts without an author keep no state.
  bool apply(const Post& post, Verdict& verdict) { return apply(key(post, verdict), verdict); }
  bool apply(const Key& key, Verdict& verdict);

  size_t entries() const { return last_post_.size() + removals_.size(); }

 private:
  // Records a removal of `author` at `ts`; true when it is one of `repeat.removals`
  // removals within one `repeat.within` window, by their times whatever order they came
  // in (one dated more than a window before the author's newest removal does not count).
  bool record_removal(uint64_t author, int64_t ts, const RepeatOffenders& repeat);
  void bound(int64_t now);

  size_t max_entries_;
  int64_t longest_window_ms_ = 0;
  int64_t newest_ms_ = INT64_MIN;  // the latest post time applied
  absl::flat_hash_map<uint64_t, int64_t> last_post_;             // author+thread+text -> last seen
  // author -> removal times, oldest first: at most twice the policy's few `removals`,
  // so a small vector (a deque would take over half a kilobyte per author).
  absl::flat_hash_map<uint64_t, std::vector<int64_t>> removals_;
};

}  // namespace civicsift
