// Which rules make a policy slow: times classify() over the generated corpus with the
// whole policy, then with each rule left out, and prints what each rule costs inside
// the whole policy, the costliest first. Left out rather than compiled alone: a rule's
// cost depends on the others (the scan is bound by the database's size in cache, and a
// rule that needs a digit is only scanned over comments with one). Each timing is the
// best of five rounds that take the variants in turn, as this shared VM drifts.
// With --rule ID, the same for each template, regex and lexicon of that rule, and for
// its plain terms together.
// Run: build/bench/rule_cost patterns/windsor.yaml [--rule windsor.threat] [--comments 20000]
#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "classify/classifier.h"
#include "gen/generator.h"
#include "policy/compiler.h"
#include "policy/loader.h"
#include "policy/phrase_template.h"

using namespace civicsift;

int main(int argc, char** argv) {
  const char* file = nullptr;
  std::string only_rule;
  size_t count = 20000;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--rule" && i + 1 < argc) only_rule = argv[++i];
    else if (arg == "--comments" && i + 1 < argc) count = std::stoul(argv[++i]);
    else if (!file && !arg.starts_with("-")) file = argv[i];
    else file = nullptr, i = argc;
  }
  if (!file) {
    fmt::print(stderr, "usage: {} POLICY.yaml [--rule ID] [--comments N]\n", argv[0]);
    return 2;
  }
  auto loaded = load_policy(file);
  if (auto* e = std::get_if<PolicyError>(&loaded)) {
    fmt::print(stderr, "{}\n", e->to_string());
    return 2;
  }
  const PolicySpec spec = std::get<PolicySpec>(loaded);

  gen::CommentGenerator generator;
  std::vector<std::string> texts;
  for (size_t i = 0; i < count; ++i) texts.push_back(generator.next_text());

  struct Variant {
    std::string left_out;  // empty: the whole policy; "floor": one term that never matches
    std::shared_ptr<const CompiledPolicy> policy;
    double best_ns = 0;
  };
  std::vector<Variant> variants;
  auto add_variant = [&](std::string left_out, PolicySpec s) {
    auto compiled = compile_policy(std::move(s), CompileOptions{default_cache_dir()});
    if (auto* e = std::get_if<PolicyError>(&compiled)) {
      fmt::print(stderr, "{}\n", e->to_string());
      std::exit(2);
    }
    variants.push_back({std::move(left_out), std::get<std::shared_ptr<const CompiledPolicy>>(compiled)});
  };
  add_variant("", spec);
  if (only_rule.empty()) {
    for (size_t i = 0; i < spec.rules.size(); ++i) {
      const RuleSpec& rule = spec.rules[i];
      if (!rule.has_patterns()) continue;  // stateful only
      PolicySpec without = spec;
      without.rules.erase(without.rules.begin() + static_cast<long>(i));
      add_variant(rule.id, std::move(without));
    }
  } else {
    const auto rule = std::find_if(spec.rules.begin(), spec.rules.end(), [&](const RuleSpec& r) { return r.id == only_rule; });
    if (rule == spec.rules.end()) {
      fmt::print(stderr, "no rule {} in {}\n", only_rule, file);
      return 2;
    }
    const auto at = static_cast<size_t>(rule - spec.rules.begin());
    auto add_without = [&](std::string name, auto keep) {
      PolicySpec without = spec;
      RuleSpec& r = without.rules[at];
      for (auto list : {&RuleSpec::terms, &RuleSpec::lexicons, &RuleSpec::regexes})
        std::erase_if(r.*list, [&](const std::string& item) { return !keep(list, item); });
      if (!r.has_patterns()) without.rules.erase(without.rules.begin() + static_cast<long>(at));
      add_variant(std::move(name), std::move(without));
    };
    // Plain terms are literals, each too cheap to time alone: left out together.
    const auto plain = std::count_if(rule->terms.begin(), rule->terms.end(), [](const auto& t) { return !is_template(t); });
    if (plain > 0)
      add_without(fmt::format("its {} plain terms", plain),
                  [](auto list, const std::string& item) { return list != &RuleSpec::terms || is_template(item); });
    for (auto list : {&RuleSpec::terms, &RuleSpec::lexicons, &RuleSpec::regexes}) {
      const char* kind = list == &RuleSpec::terms ? "template" : list == &RuleSpec::lexicons ? "lexicon" : "regex";
      for (const std::string& item : (*rule).*list)
        if (list != &RuleSpec::terms || is_template(item))
          add_without(fmt::format("{} {}", kind, item),
                      [&](auto other_list, const std::string& other) { return other_list != list || other != item; });
    }
  }
  PolicySpec none = spec;
  none.rules = {spec.rules.front()};
  none.rules.front().regexes.clear();
  none.rules.front().lexicons.clear();
  none.rules.front().terms = {"zzzzqqqq"};
  add_variant("floor", std::move(none));

  // Rounds over all variants in turn, so that the VM's drift falls on all of them alike.
  ScanContext ctx;
  Verdict v;
  Comment c;
  c.tenant = spec.tenant;
  for (int round = 0; round < 5; ++round) {
    for (auto& variant : variants) {
      const auto start = std::chrono::steady_clock::now();
      for (const auto& t : texts) {
        c.text = t;
        classify(*variant.policy, c, ctx, v);
      }
      const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count() /
                        static_cast<double>(count);
      if (round == 0 || ns < variant.best_ns) variant.best_ns = ns;
    }
  }

  const Variant& whole = variants.front();
  fmt::print("{}: {:.0f} ns per comment with all rules ({} patterns); {:.0f} ns floor (skeleton + empty scan)\n",
             spec.tenant, whole.best_ns, whole.policy->pattern_count(), variants.back().best_ns);
  std::vector<std::tuple<double, std::string, size_t>> costs;
  for (size_t i = 1; i + 1 < variants.size(); ++i)
    costs.emplace_back(whole.best_ns - variants[i].best_ns, variants[i].left_out,
                       whole.policy->pattern_count() - variants[i].policy->pattern_count());
  std::sort(costs.rbegin(), costs.rend());
  fmt::print("saved when left out (best of 5 interleaved rounds; the noise is some tens of ns):\n");
  for (const auto& [ns, id, n] : costs) fmt::print("{:8.0f} ns {:7} patterns  {}\n", ns, n, id);
  return 0;
}
