// civicsift clauses: the clause -> rules -> category -> action table of every policy,
// as Markdown, generated from the policies themselves so it cannot drift from them.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <map>

#include "app/commands.h"
#include "policy/loader.h"

namespace civicsift {

int run_clauses(const PolicyOptions& options) {
  auto specs = load_policy_dir(options.patterns);
  if (auto* e = std::get_if<PolicyError>(&specs)) {
    spdlog::error("policy error: {}", e->to_string());
    return 2;
  }
  for (const auto& spec : std::get<std::vector<PolicySpec>>(specs)) {
    fmt::print("### {} ({})\n\n{}\n\n", spec.name, spec.tenant, spec.source);
    fmt::print("| clause | rules | category | action | notes |\n|---|---|---|---|---|\n");
    // Rules citing the same clause with the same category and action share a row.
    std::map<std::tuple<std::string, Category, Action>, std::pair<std::vector<std::string>, std::string>> rows;
    std::vector<std::tuple<std::string, Category, Action>> order;
    for (const auto& r : spec.rules) {
      const auto key = std::make_tuple(r.clause, r.category, r.action);
      auto [it, inserted] = rows.try_emplace(key);
      if (inserted) order.push_back(key);
      it->second.first.push_back(r.id);
      std::vector<std::string> notes;
      if (r.direction == DirectionScope::outbound) notes.push_back("outbound posts");
      if (r.duplicate_within_ms) notes.push_back("duplicate posts");
      if (r.during_election) notes.push_back("nomination period");
      for (const auto& route : r.routes) notes.push_back("route " + route);
      if (!notes.empty() && it->second.second.find(notes.front()) == std::string::npos)
        it->second.second += (it->second.second.empty() ? "" : "; ") + fmt::format("{}", fmt::join(notes, ", "));
    }
    for (const auto& key : order) {
      const auto& [ids, notes] = rows[key];
      fmt::print("| {} | {} | {} | {} | {} |\n", std::get<0>(key), fmt::join(ids, ", "), to_string(std::get<1>(key)),
                 to_string(std::get<2>(key)), notes);
    }
    if (spec.repeat_offenders.removals > 0)
      fmt::print("| {} | (repeat offenders: {} removals within the window) | | | route {} |\n",
                 spec.repeat_offenders.clause, spec.repeat_offenders.removals, spec.repeat_offenders.route);
    fmt::print("\n");
  }
  return 0;
}

}  // namespace civicsift
