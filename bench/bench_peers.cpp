// civicsift against the engines people would use instead, on the same rules and the
// same corpus, one thread each:
//   civicsift   JSON -> decode -> skeleton -> one Hyperscan scan -> verdict -> JSON out
//   re2_set     JSON -> decode -> skeleton -> RE2::Set::Match over the same patterns
//   pcre2_loop  JSON -> decode -> skeleton -> each pattern in turn, PCRE2 with JIT
// The peers scan the same buffer (text, newline, skeleton) with the expressions the
// policy compiles to (policy_expressions), and do less work: they only learn which
// patterns match, not where, and write no verdict.
// Run: build/bench/bench_peers [--patterns DIR]  (Google Benchmark flags apply)
#define PCRE2_CODE_UNIT_WIDTH 8
#include <benchmark/benchmark.h>
#include <hs/hs.h>
#include <pcre2.h>
#include <re2/re2.h>
#include <re2/set.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "corpus.h"
#include "decode/decoder.h"
#include "policy/loader.h"
#include "text/skeleton.h"

using namespace civicsift;

namespace {

std::string g_patterns = CIVICSIFT_SOURCE_DIR "/patterns";
constexpr size_t kCorpusSize = 20'000;

const bench::Corpus& corpus() {
  static const bench::Corpus built = bench::build_corpus(g_patterns, kCorpusSize);
  return built;
}

std::vector<PatternExpression> expressions_of(const CompiledPolicy& policy) {
  auto r = policy_expressions(policy.spec());
  if (auto* e = std::get_if<PolicyError>(&r)) {
    std::fprintf(stderr, "%s\n", e->to_string().c_str());
    std::exit(2);
  }
  return std::get<std::vector<PatternExpression>>(std::move(r));
}

// Per tenant, in the order of the policy set.
struct Re2Tenant {
  std::unique_ptr<RE2::Set> set;
  size_t rejected = 0;
};

struct Pcre2Pattern {
  pcre2_code* code = nullptr;
};

const std::vector<Re2Tenant>& re2_sets() {
  static const std::vector<Re2Tenant> built = [] {
    std::vector<Re2Tenant> out;
    for (const auto& p : corpus().policies->policies()) {
      RE2::Options o;
      o.set_encoding(RE2::Options::EncodingLatin1);  // bytes, as Hyperscan without HS_FLAG_UTF8
      o.set_max_mem(int64_t{1} << 31);
      o.set_log_errors(false);
      Re2Tenant t;
      t.set = std::make_unique<RE2::Set>(o, RE2::UNANCHORED);
      for (const auto& e : expressions_of(*p)) {
        const std::string expr = (e.flags & HS_FLAG_CASELESS ? "(?i)" : "") + e.expression;
        if (t.set->Add(expr, nullptr) < 0) t.rejected++;
      }
      if (!t.set->Compile()) {
        std::fprintf(stderr, "RE2::Set for %s does not compile (out of memory)\n", p->tenant().c_str());
        std::exit(2);
      }
      out.push_back(std::move(t));
    }
    return out;
  }();
  return built;
}

struct Pcre2Patterns {
  std::vector<std::vector<Pcre2Pattern>> by_tenant;
  size_t rejected = 0;  // expressions PCRE2 would not compile: the loop does less work
};

const Pcre2Patterns& pcre2_patterns() {
  static const Pcre2Patterns built = [] {
    Pcre2Patterns out;
    for (const auto& p : corpus().policies->policies()) {
      std::vector<Pcre2Pattern> tenant;
      for (const auto& e : expressions_of(*p)) {
        int error = 0;
        PCRE2_SIZE offset = 0;
        pcre2_code* code =
            pcre2_compile(reinterpret_cast<PCRE2_SPTR>(e.expression.data()), e.expression.size(),
                          e.flags & HS_FLAG_CASELESS ? PCRE2_CASELESS : 0, &error, &offset, nullptr);
        if (!code) {
          ++out.rejected;
          continue;
        }
        pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
        tenant.push_back({code});
      }
      out.by_tenant.push_back(std::move(tenant));
    }
    return out;
  }();
  return built;
}

size_t tenant_index(std::string_view tenant) {
  const auto& policies = corpus().policies->policies();
  for (size_t i = 0; i < policies.size(); ++i)
    if (policies[i]->tenant() == tenant) return i;
  return 0;
}

// What each engine is given, over all tenants: civicsift's compiled expressions and
// the masked spellings it looks up after the scan; the peers' expressions, those
// spellings among them as literals.
struct RuleCounts {
  size_t compiled = 0, masked_terms = 0, peer_expressions = 0;
};

const RuleCounts& rule_counts() {
  static const RuleCounts counted = [] {
    RuleCounts c;
    for (const auto& p : corpus().policies->policies()) {
      c.compiled += p->pattern_count();
      c.masked_terms += p->masked_terms().size();
      c.peer_expressions += expressions_of(*p).size();
    }
    return c;
  }();
  return counted;
}

void report(benchmark::State& state) {
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.counters["avg_text_bytes"] = static_cast<double>(corpus().text_bytes) / kCorpusSize;
}

// What the peers share with civicsift: decode, skeleton, one buffer to scan.
struct Prepared {
  Decoder decoder;
  text::Skeleton skeleton;
  std::string buffer;
  const Comment* decode_into(std::string_view json, Comment& out) {
    auto r = decoder.decode(json);
    if (!std::holds_alternative<Comment>(r)) return nullptr;
    out = std::get<Comment>(r);
    text::build_skeleton(out.text, skeleton);
    text::mark_for_scan(skeleton);
    buffer.assign(out.text);
    buffer.push_back('\n');
    buffer.append(skeleton.view());
    return &out;
  }
};

void BM_civicsift(benchmark::State& state) {
  bench::run_whole_path(state, corpus());
  report(state);
  state.counters["expressions"] = static_cast<double>(rule_counts().compiled);
  state.counters["masked_terms"] = static_cast<double>(rule_counts().masked_terms);
}
BENCHMARK(BM_civicsift);

void BM_re2_set(benchmark::State& state) {
  const auto& c = corpus();
  const auto& sets = re2_sets();
  size_t rejected = 0;
  for (const auto& t : sets) rejected += t.rejected;
  Prepared prep;
  Comment comment;
  std::vector<int> matched;
  RE2::Set::ErrorInfo error;
  size_t i = 0, failed = 0, matching = 0;
  for (auto _ : state) {
    if (prep.decode_into(c.json[i], comment)) {
      matched.clear();
      error.kind = RE2::Set::kNoError;
      matching += sets[tenant_index(comment.tenant)].set->Match(prep.buffer, &matched, &error);
      failed += error.kind != RE2::Set::kNoError;
      benchmark::DoNotOptimize(matched.data());
    }
    i = (i + 1) % kCorpusSize;
  }
  report(state);
  state.counters["expressions"] = static_cast<double>(rule_counts().peer_expressions);
  state.counters["patterns_rejected"] = static_cast<double>(rejected);
  state.counters["failed_share"] = static_cast<double>(failed) / static_cast<double>(state.iterations());
  state.counters["matching_share"] = static_cast<double>(matching) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_re2_set);

void BM_pcre2_loop(benchmark::State& state) {
  const auto& c = corpus();
  const auto& patterns = pcre2_patterns();
  pcre2_match_data* match = pcre2_match_data_create(1, nullptr);
  Prepared prep;
  Comment comment;
  // Google Benchmark calls this several times, each a few hundred iterations at this
  // speed: each call goes on where the last stopped, so the loop sees the whole corpus
  // mix rather than its first few hundred comments over and over.
  static size_t i = 0;
  for (auto _ : state) {
    if (prep.decode_into(c.json[i], comment)) {
      int hits = 0;
      for (const auto& p : patterns.by_tenant[tenant_index(comment.tenant)])
        hits += pcre2_match(p.code, reinterpret_cast<PCRE2_SPTR>(prep.buffer.data()), prep.buffer.size(), 0, 0, match,
                            nullptr) > 0;
      benchmark::DoNotOptimize(hits);
    }
    i = (i + 1) % kCorpusSize;
  }
  pcre2_match_data_free(match);
  report(state);
  state.counters["expressions"] = static_cast<double>(rule_counts().peer_expressions);
  state.counters["patterns_rejected"] = static_cast<double>(patterns.rejected);
}
BENCHMARK(BM_pcre2_loop)->MinTime(2.0);

}  // namespace

int main(int argc, char** argv) { return bench::benchmark_main(argc, argv, g_patterns); }
