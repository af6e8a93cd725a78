// Which rules make a policy slow: compiles each rule of a tenant alone and times one
// scan of every comment of the generated corpus against it (text + skeleton buffer,
// as the classifier scans). Prints the costliest rules first.
// Run: build/bench/rule_cost patterns/windsor.yaml [comments]
#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "classify/classifier.h"
#include "gen/generator.h"
#include "policy/compiler.h"
#include "policy/loader.h"

using namespace civicsift;

int main(int argc, char** argv) {
  if (argc < 2) {
    fmt::print(stderr, "usage: {} POLICY.yaml [COMMENTS]\n", argv[0]);
    return 2;
  }
  const size_t count = argc > 2 ? std::stoul(argv[2]) : 20000;
  auto loaded = load_policy(argv[1]);
  if (auto* e = std::get_if<PolicyError>(&loaded)) {
    fmt::print(stderr, "{}\n", e->to_string());
    return 2;
  }
  const PolicySpec spec = std::get<PolicySpec>(loaded);

  gen::CommentGenerator generator;
  std::vector<std::string> texts;
  for (size_t i = 0; i < count; ++i) texts.push_back(generator.next_text());

  size_t patterns = 0;
  auto time_policy = [&](PolicySpec s) -> double {
    auto compiled = compile_policy(std::move(s), CompileOptions{default_cache_dir()});
    if (auto* e = std::get_if<PolicyError>(&compiled)) {
      fmt::print(stderr, "{}\n", e->to_string());
      std::exit(2);
    }
    const auto& policy = *std::get<std::shared_ptr<const CompiledPolicy>>(compiled);
    patterns = policy.pattern_count();
    ScanContext ctx;
    Verdict v;
    Comment c;
    c.tenant = policy.tenant();
    const auto start = std::chrono::steady_clock::now();
    for (const auto& t : texts) {
      c.text = t;
      classify(policy, c, ctx, v);
    }
    return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count() / static_cast<double>(count);
  };

  const double whole = time_policy(spec);
  const size_t whole_patterns = patterns;
  std::vector<std::tuple<double, std::string, size_t>> costs;
  for (const auto& rule : spec.rules) {
    if (rule.terms.empty() && rule.lexicons.empty() && rule.regexes.empty()) continue;  // stateful only: no patterns
    PolicySpec one = spec;
    one.rules = {rule};
    const double ns = time_policy(std::move(one));
    costs.emplace_back(ns, rule.id, patterns);
  }
  PolicySpec none = spec;
  none.rules = {spec.rules.front()};
  none.rules.front().regexes.clear();
  none.rules.front().lexicons.clear();
  none.rules.front().terms = {"zzzzqqqq"};
  const double floor = time_policy(std::move(none));
  std::sort(costs.rbegin(), costs.rend());
  fmt::print("{}: {:.0f} ns per comment with all rules ({} patterns); {:.0f} ns floor (skeleton + empty scan)\n",
             spec.tenant, whole, whole_patterns, floor);
  for (const auto& [ns, id, n] : costs) fmt::print("{:8.0f} ns {:7} patterns  {}\n", ns - floor, n, id);
  return 0;
}
