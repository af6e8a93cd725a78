// classify: one Hyperscan scan of a comment -> Verdict.
//
// The scanned buffer is the raw text, a newline, then the text's skeleton
// (text/skeleton.h); regex rules match the first part, term rules the second,
// and one hs_scan covers both. Validators, run lengths and allow-lists are
// checked on the hits right after the scan.
#pragma once

#include <hs/hs.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "decode/comment.h"
#include "policy/compiler.h"
#include "text/skeleton.h"

namespace civicsift {

struct Match {
  uint16_t rule;   // index into the policy's rules
  uint32_t start;  // byte offsets into the comment's text
  uint32_t end;
};

struct Verdict {
  const CompiledPolicy* policy = nullptr;
  Action action = Action::allow;
  uint32_t categories = 0;  // bit (1 << Category)
  int score = 0;
  std::vector<Match> matches;            // by start offset
  std::vector<std::string_view> routes;  // views into the policy, distinct
  // Of the text as duplicate rules compare it (classifier.cpp, duplicate_text), when the
  // policy has such rules; 0 when it has none or the text is empty once normalised.
  uint64_t duplicate_hash = 0;
  // The scan stopped recording hits (65,536): what it did not record may have
  // mattered, so the verdict is at least `review`. Padding a comment with harmless
  // hits then cannot hide a threat after them.
  bool hits_capped = false;

  bool has(Category c) const { return categories & (1u << static_cast<unsigned>(c)); }
};

// Per-thread scan state: Hyperscan scratch and reusable buffers. Not thread-safe.
class ScanContext {
 public:
  ScanContext();
  ~ScanContext();
  ScanContext(const ScanContext&) = delete;
  ScanContext& operator=(const ScanContext&) = delete;

  struct Hit {
    unsigned pattern;
    uint32_t from, to;
  };
  // One comment's hits, Hyperscan's and masked spellings' together, up to a cap per
  // database that bounds memory; `overflowed` when more came than were kept.
  struct Hits {
    std::vector<Hit> list;
    // The main database's template hits, kept apart during its scan: they join `list`
    // after its literals, with a budget of their own.
    std::vector<Hit> templates;
    size_t budget_start = 0;  // where the hits of the database being scanned begin
    size_t masked = 0;
    bool overflowed = false;
    const uint32_t* shared_ids = nullptr;  // CompiledPolicy::shared_ids() of the policy scanned for; kept by clear()
    void clear() {
      list.clear();
      templates.clear();
      budget_start = 0;
      masked = 0;
      overflowed = false;
    }
  };

 private:
  friend void classify(const CompiledPolicy&, const Comment&, ScanContext&, Verdict&);
  void ensure_scratch(const CompiledPolicy& policy);

  hs_scratch_t* scratch_ = nullptr;
  std::vector<uint64_t> prepared_;  // CompiledPolicy::serial() of the policies the scratch fits
  text::Skeleton skeleton_;  // also the scan buffer: text, newline, skeleton
  Hits hits_;
  text::Skeleton written_out_;  // the skeleton with masked words of phrases written out
  Hits rescan_hits_;
  std::vector<Match> candidates_;
  struct AllowSpan {
    unsigned pattern;
    uint32_t start, end;  // source bytes
  };
  std::vector<AllowSpan> allows_;
  std::string duplicate_text_;
};

// Classifies `comment` under `policy`, overwriting `out`.
void classify(const CompiledPolicy& policy, const Comment& comment, ScanContext& context, Verdict& out);

// Puts matches in the order a verdict lists them: by start, then rule.
inline void order_matches(std::vector<Match>& matches) {
  std::sort(matches.begin(), matches.end(), [](const Match& a, const Match& b) {
    return a.start != b.start ? a.start < b.start : a.rule < b.rule;
  });
}

// Recomputes action, categories, routes and score from `v.matches` (after a match
// was added, e.g. by StreamState). Routes added outside the rules are kept.
void aggregate(const CompiledPolicy& policy, Verdict& v);

// Whether `rule` applies to a comment of this direction posted at `ts_ms` (kNoTime: now):
// its direction scope and, for `during: election`, the nomination period.
bool rule_applies(const RuleSpec& rule, const PolicySpec& spec, Direction direction, int64_t ts_ms);

}  // namespace civicsift
