#include "classify/state.h"

#include <xxhash.h>

#include <algorithm>
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
        if (since < 0 || since > spec.rules[rule].duplicate_within_ms ||
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

  if (repeat.removals > 0 && verdict.action >= Action::remove) {
    auto& times = removals_[post.author];
    times.push_back(ts);
    const auto stale = std::find_if(times.begin(), times.end(), [&](int64_t t) { return ts - t <= repeat.within_ms; });
    times.erase(times.begin(), stale);
    if (times.size() > static_cast<size_t>(repeat.removals))
      times.erase(times.begin(), times.end() - repeat.removals);
    if (times.size() >= static_cast<size_t>(repeat.removals) &&
        std::find(verdict.routes.begin(), verdict.routes.end(), repeat.route) == verdict.routes.end()) {
      verdict.routes.push_back(repeat.route);
      changed = true;
    }
  }
  if (entries() > max_entries_) bound(std::min(ts, now_ms() + kFutureSlackMs));
  return changed;
}

void StreamState::bound(int64_t now) {
  // First forget what no window can reach any more; if that is not enough, forget
  // everything (a burst of distinct authors larger than the budget).
  absl::erase_if(last_post_, [&](const auto& kv) { return now - kv.second > longest_window_ms_; });
  absl::erase_if(removals_, [&](const auto& kv) { return kv.second.empty() || now - kv.second.back() > longest_window_ms_; });
  if (entries() > max_entries_) {
    last_post_.clear();
    removals_.clear();
  }
}

}  // namespace civicsift
