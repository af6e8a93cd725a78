// civicsift check: compiles every policy and runs every rule's examples.
#include <fmt/format.h>

#include <algorithm>

#include "app/commands.h"
#include "classify/classifier.h"
#include "classify/state.h"

namespace civicsift {

int run_check(const PolicyOptions& options) {
  auto policies = load_policies_or_report(options);
  if (!policies) return 1;
  ScanContext context;
  Verdict verdict;
  size_t rules = 0, examples = 0, failures = 0;
  auto fail = [&](const CompiledPolicy& p, const RuleSpec& r, std::string_view what) {
    ++failures;
    fmt::print("FAIL {}:{}: rule {}: {}\n", p.spec().file.string(), r.line, r.id, what);
  };
  for (const auto& policy : policies->policies()) {
    for (size_t i = 0; i < policy->spec().rules.size(); ++i) {
      const RuleSpec& r = policy->spec().rules[i];
      ++rules;
      if (r.examples_match.empty()) fail(*policy, r, "has no examples that must match");
      if (r.examples_no_match.empty()) fail(*policy, r, "has no examples that must not match");
      // An example is judged as the rule would meet it: outbound rules on outbound
      // posts, election rules inside the nomination period, and duplicate rules on a
      // text posted twice by one author in one thread (once for no_match examples).
      auto fires = [&](const std::string& text, bool twice) {
        Comment c;
        c.id = "example";
        c.tenant = policy->tenant();
        c.text = text;
        c.author = "example-author";
        c.direction = r.direction == DirectionScope::outbound ? Direction::outbound : Direction::inbound;
        // A fixed time, so that no example depends on today's date.
        c.ts_ms = r.during_election ? policy->spec().election->open_ms : 0;
        StreamState state;
        for (int k = 0; k < (r.duplicate_within_ms && twice ? 2 : 1); ++k) {
          classify(*policy, c, context, verdict);
          state.apply({c.tenant, c.author, c.thread, static_cast<uint32_t>(c.text.size()), c.ts_ms, c.direction},
                      verdict);
        }
        return std::any_of(verdict.matches.begin(), verdict.matches.end(),
                           [&](const Match& m) { return m.rule == i; });
      };
      for (const auto& ex : r.examples_match) {
        ++examples;
        if (!fires(ex, true)) fail(*policy, r, fmt::format("should match but does not: \"{}\"", ex));
      }
      for (const auto& ex : r.examples_no_match) {
        ++examples;
        if (fires(ex, false)) fail(*policy, r, fmt::format("should not match but does: \"{}\"", ex));
      }
    }
  }
  fmt::print("{} policies, {} rules, {} examples: {}\n", policies->policies().size(), rules, examples,
             failures ? fmt::format("{} failed", failures) : std::string("all passed"));
  return failures ? 1 : 0;
}

}  // namespace civicsift
