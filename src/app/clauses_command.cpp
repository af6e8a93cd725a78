// civicsift clauses: the clause -> rules -> category -> action table of every policy,
// as Markdown, generated from the policies themselves so it cannot drift from them.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <map>

#include "app/commands.h"
#include "policy/loader.h"

namespace civicsift {
namespace {

// Text from a policy as one Markdown table cell: a '|' would start another cell and a
// line break end the row.
std::string cell(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '|') out += "\\|";
    else if (c == '\n' || c == '\r') out += ' ';
    else out += c;
  }
  return out;
}

}  // namespace

int run_clauses(const PolicyOptions& options) {
  auto specs = load_policy_dir(options.patterns);
  if (auto* e = std::get_if<PolicyError>(&specs)) {
    spdlog::error("policy error: {}", e->to_string());
    return 2;
  }
  for (const auto& spec : std::get<std::vector<PolicySpec>>(specs)) {
    fmt::print("### {} ({})\n\n{}\n\n", cell(spec.name), cell(spec.tenant), cell(spec.source));
    fmt::print("| clause | rules | category | action | notes |\n|---|---|---|---|---|\n");
    // Rules citing the same clause with the same category, action and notes share a row:
    // a note (a route, a direction) is true of every rule in its row.
    using Row = std::tuple<std::string, Category, Action, std::string>;
    std::map<Row, std::vector<std::string>> rows;
    std::vector<Row> order;
    for (const auto& r : spec.rules) {
      std::vector<std::string> notes;
      if (r.direction == DirectionScope::outbound) notes.push_back("outbound posts");
      if (r.direction == DirectionScope::inbound) notes.push_back("public comments only");
      if (r.duplicate_within_ms) notes.push_back("duplicate posts");
      if (r.during_election) notes.push_back("nomination period");
      for (const auto& route : r.routes) notes.push_back("route " + route);
      Row key{r.clause, r.category, r.action, fmt::format("{}", fmt::join(notes, ", "))};
      auto [it, inserted] = rows.try_emplace(key);
      if (inserted) order.push_back(std::move(key));
      it->second.push_back(r.id);
    }
    for (const auto& key : order) {
      const std::string ids = fmt::format("{}", fmt::join(rows[key], ", "));
      fmt::print("| {} | {} | {} | {} | {} |\n", cell(std::get<0>(key)), cell(ids), to_string(std::get<1>(key)),
                 to_string(std::get<2>(key)), cell(std::get<3>(key)));
    }
    if (spec.repeat_offenders.removals > 0)
      fmt::print("| {} | (repeat offenders: {} removals within the window) | | | route {} |\n",
                 cell(spec.repeat_offenders.clause), spec.repeat_offenders.removals, cell(spec.repeat_offenders.route));
    fmt::print("\n");
  }
  return 0;
}

}  // namespace civicsift
