#include "classify/state.h"

#include <xxhash.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "common/time.h"

namespace civicsift {
namespace {

// A post's time can come from its `ts`; one far in the future must not make the
// bound forget every window's history at once.
constexpr int64_t kFutureSlackMs = 86'400'000;

uint64_t key_of(std::initializer_list<std::string_view> parts, uint64_t extra) {
  thread_local std::string buf;
  buf.clear();
  for (auto p : parts) {
    // Each part after its length: "ab"+"c" differs from "a"+"bc", whatever bytes
    // (NUL included) the parts hold.
    const auto size = static_cast<uint32_t>(p.size());
    buf.append(reinterpret_cast<const char*>(&size), sizeof size);
    buf.append(p);
  }
  buf.append(reinterpret_cast<const char*>(&extra), sizeof extra);
  return XXH3_64bits(buf.data(), buf.size());
}

}  // namespace

StreamState::Key StreamState::key(const Post& post, const Verdict& verdict) {
  Key k;
  const CompiledPolicy& policy = *verdict.policy;
  if (!policy.keeps_state() || post.author.empty()) return k;
  k.keeps_state = true;
  k.text_size = post.text_size;
  k.ts_ms = post.ts_ms;
  k.direction = post.direction;
  if (verdict.duplicate_hash != 0)  // 0: no duplicate rules, or nothing to compare
    k.duplicate = key_of({post.tenant, post.author, post.thread}, verdict.duplicate_hash);
  if (policy.spec().repeat_offenders.removals > 0) k.author = key_of({post.tenant, post.author}, 0);
  return k;
}

bool StreamState::apply(const Key& post, Verdict& verdict) {
  if (!post.keeps_state) return false;
  const CompiledPolicy& policy = *verdict.policy;
  const int64_t ts = time_or_now(post.ts_ms);
  const PolicySpec& spec = policy.spec();
  const RepeatOffenders& repeat = spec.repeat_offenders;
  // Known before anything is stored: bound() must not forget what a window still needs.
  for (uint16_t rule : policy.duplicate_rules())
    longest_window_ms_ = std::max(longest_window_ms_, spec.rules[rule].duplicate_within_ms);
  if (repeat.removals > 0) longest_window_ms_ = std::max(longest_window_ms_, repeat.within_ms);
  bool changed = false;

  if (post.duplicate != 0) {
    auto [it, inserted] = last_post_.try_emplace(post.duplicate, ts);
    if (!inserted) {
      const int64_t since = ts - it->second;
      for (uint16_t rule : policy.duplicate_rules()) {
        // Either way round: a copy that arrives late is as much a repeat.
        const int64_t window = spec.rules[rule].duplicate_within_ms;
        if (since > window || since < -window ||
            !rule_applies(spec.rules[rule], spec, post.direction, post.ts_ms))
          continue;
        verdict.matches.push_back({rule, 0, post.text_size});
        changed = true;
      }
      it->second = std::max(it->second, ts);
    }
    if (changed) {
      order_matches(verdict.matches);  // redaction reads them in text order
      aggregate(policy, verdict);
    }
  }

  if (repeat.removals > 0 && verdict.action >= Action::remove && record_removal(post.author, ts, repeat) &&
      std::find(verdict.routes.begin(), verdict.routes.end(), repeat.route) == verdict.routes.end()) {
    verdict.routes.push_back(repeat.route);
    changed = true;
  }
  // Ages are measured from the stream's newest post: the one that crossed the bound may
  // be a late one, and from its time nothing would look old.
  newest_ms_ = std::max(newest_ms_, ts);
  if (entries() > max_entries_) bound(std::min(newest_ms_, now_ms() + kFutureSlackMs));
  return changed;
}

bool StreamState::record_removal(uint64_t author, int64_t ts, const RepeatOffenders& repeat) {
  const auto n = static_cast<size_t>(repeat.removals);
  auto& times = removals_[author];
  // Counted: removals dated up to one window before the author's newest. Kept: what
  // their windows can reach (two windows back), at most 2n times: a window holding a
  // dropped time and this one would hold n kept ones too.
  const int64_t newest = times.empty() ? ts : std::max(ts, times.back());
  if (ts < newest - repeat.within_ms) return false;
  times.erase(times.begin(), std::lower_bound(times.begin(), times.end(), newest - 2 * repeat.within_ms));
  const auto at = static_cast<size_t>(std::upper_bound(times.begin(), times.end(), ts) - times.begin());
  times.insert(times.begin() + static_cast<std::ptrdiff_t>(at), ts);
  bool repeated = false;
  // Any n consecutive removals that include this one and fit in one window.
  for (size_t first = at + 1 >= n ? at + 1 - n : 0; first <= at && first + n <= times.size() && !repeated; ++first)
    repeated = times[first + n - 1] - times[first] <= repeat.within_ms;
  if (times.size() > 2 * n) {
    const size_t drop = times.size() - 2 * n;
    times.erase(times.begin(), times.begin() + static_cast<std::ptrdiff_t>(drop));
  }
  return repeated;
}

void StreamState::bound(int64_t now) {
  // Forget, while over the budget: what no post can reach any more (a post dated up to a
  // window before `now` still meets what is a window older than itself), then what only
  // such late posts would, then everything (a burst of distinct authors larger than the
  // budget).
  for (const int64_t reach : {longest_window_ms_ > INT64_MAX / 2 ? INT64_MAX : 2 * longest_window_ms_, longest_window_ms_}) {
    absl::erase_if(last_post_, [&](const auto& kv) { return now - kv.second > reach; });
    absl::erase_if(removals_, [&](const auto& kv) { return kv.second.empty() || now - kv.second.back() > reach; });
    if (entries() <= max_entries_) return;
  }
  if (entries() > max_entries_) {
    last_post_.clear();
    removals_.clear();
  }
}

}  // namespace civicsift
