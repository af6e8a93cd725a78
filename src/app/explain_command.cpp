// civicsift explain: for people. Which rules fired, the clause each cites, the
// spans in the text, and the resulting action.
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <string>
#include <string_view>
#include <vector>

#include "app/commands.h"
#include "classify/classifier.h"
#include "classify/verdict_writer.h"

namespace civicsift {
namespace {

// The text as it can go to a terminal: control characters shown as \xNN (C0, DEL)
// and \u00NN (C1), so a comment cannot clear the screen or forge lines of the report.
std::string printable(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    const bool c1 = c == 0xC2 && i + 1 < text.size() && (static_cast<unsigned char>(text[i + 1]) & 0xE0) == 0x80;
    if (c < 0x20 || c == 0x7F) out += fmt::format("\\x{:02x}", c);
    else if (c1) out += fmt::format("\\u{:04x}", static_cast<unsigned char>(text[++i]));
    else out += static_cast<char>(c);
  }
  return out;
}

}  // namespace

int run_explain(const ExplainOptions& options) {
  auto policies = load_policies_or_report(options.policy);
  if (!policies) return 2;
  const CompiledPolicy* policy = policies->find(options.tenant);
  if (!policy) {
    std::vector<std::string_view> known;
    for (const auto& p : policies->policies()) known.push_back(p->tenant());
    spdlog::error("unknown tenant \"{}\"; known: {}", options.tenant, fmt::join(known, " "));
    return 2;
  }
  Comment comment;
  comment.id = "explain";
  comment.tenant = options.tenant;
  comment.text = options.text;
  comment.direction = options.outbound ? Direction::outbound : Direction::inbound;
  ScanContext context;
  Verdict verdict;
  classify(*policy, comment, context, verdict);

  const bool color = ::isatty(STDOUT_FILENO);
  const std::string on = color ? "\x1b[1;31m" : "[", off = color ? "\x1b[0m" : "]";
  fmt::print("policy   {} ({})\n", policy->label(), policy->spec().name);
  fmt::print("action   {}", to_string(verdict.action));
  if (verdict.score) fmt::print("  (score {})", verdict.score);
  fmt::print("\n");
  if (!verdict.routes.empty()) {
    fmt::print("routes  ");
    for (auto r : verdict.routes) fmt::print(" {}", r);
    fmt::print("\n");
  }
  if (verdict.matches.empty()) {
    fmt::print("no rule fired\n");
    return 0;
  }
  fmt::print("\n");
  for (const Match& m : verdict.matches) {
    const RuleSpec& r = policy->rule(m.rule);
    const std::string_view text = options.text;
    fmt::print("  {:<10} {} -> {}  ({})\n", to_string(r.category), r.id, to_string(r.action), r.clause);
    fmt::print("             bytes {}..{}: {}{}{}{}{}\n", m.start, m.end, printable(text.substr(0, m.start)), on,
               printable(text.substr(m.start, m.end - m.start)), off, printable(text.substr(m.end)));
  }
  return 0;
}

}  // namespace civicsift
