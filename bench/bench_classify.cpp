// Per-comment cost of each layer and of the whole classify path, on a realistic
// generated corpus (mostly benign municipal comments, ~12% violations, 2% long),
// spread over the tenants of the policy folder.
// Run: build/bench/bench_classify [--patterns DIR]  (Google Benchmark flags apply)
//   --patterns patterns           the five full policy packs (default)
//   --patterns tests/data/policy  a starter-size policy (6 rules, masked-vulgarity lexicon)
#include <benchmark/benchmark.h>
#include <hs/hs.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "classify/processor.h"
#include "classify/verdict_writer.h"
#include "corpus.h"
#include "gen/generator.h"
#include "policy/compiler.h"
#include "text/skeleton.h"

using namespace civicsift;

namespace {

std::string g_patterns = CIVICSIFT_SOURCE_DIR "/patterns";
constexpr size_t kCorpusSize = 50'000;
using bench::Corpus;

const Corpus& corpus() {
  static const Corpus built = bench::build_corpus(g_patterns, kCorpusSize);
  return built;
}

void report(benchmark::State& state, const Corpus& c) {
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  // A property of the corpus: averaged over threads, not summed.
  state.counters["avg_text_bytes"] =
      benchmark::Counter(static_cast<double>(c.text_bytes) / kCorpusSize, benchmark::Counter::kAvgThreads);
}

void BM_Decode(benchmark::State& state) {
  const auto& c = corpus();
  Decoder decoder;
  size_t i = bench::thread_start(state, kCorpusSize);
  for (auto _ : state) {
    auto r = decoder.decode(c.json[i]);
    benchmark::DoNotOptimize(r);
    i = (i + 1) % kCorpusSize;
  }
  report(state, c);
}
BENCHMARK(BM_Decode);
BENCHMARK(BM_Decode)->Threads(2)->UseRealTime();

void BM_Skeleton(benchmark::State& state) {
  const auto& c = corpus();
  text::Skeleton sk;
  size_t i = bench::thread_start(state, kCorpusSize);
  for (auto _ : state) {
    text::build_skeleton(c.comments[i].text, sk);
    benchmark::DoNotOptimize(sk.view().data());
    i = (i + 1) % kCorpusSize;
  }
  report(state, c);
}
BENCHMARK(BM_Skeleton);
BENCHMARK(BM_Skeleton)->Threads(2)->UseRealTime();

void BM_ScanAndVerdict(benchmark::State& state) {
  const auto& c = corpus();
  ScanContext ctx;
  Verdict v;
  size_t i = bench::thread_start(state, kCorpusSize);
  for (auto _ : state) {
    const Comment& comment = c.comments[i];
    classify(*c.policies->find(comment.tenant), comment, ctx, v);
    benchmark::DoNotOptimize(v.action);
    i = (i + 1) % kCorpusSize;
  }
  report(state, c);
}
BENCHMARK(BM_ScanAndVerdict);

// The verdict of every corpus comment, classified once: the write is timed over the
// corpus mix, as the other layers are.
const std::vector<Verdict>& corpus_verdicts() {
  static const std::vector<Verdict> built = [] {
    const auto& c = corpus();
    ScanContext ctx;
    std::vector<Verdict> verdicts(c.size());
    for (size_t k = 0; k < verdicts.size(); ++k)
      classify(*c.policies->find(c.comments[k].tenant), c.comments[k], ctx, verdicts[k]);
    return verdicts;
  }();
  return built;
}

void BM_WriteVerdict(benchmark::State& state) {
  const auto& c = corpus();
  const auto& verdicts = corpus_verdicts();
  std::string out;
  size_t i = bench::thread_start(state, kCorpusSize);
  for (auto _ : state) {
    out.clear();
    write_verdict(out, c.comments[i], verdicts[i]);
    benchmark::DoNotOptimize(out.data());
    i = (i + 1) % kCorpusSize;
  }
  report(state, c);
}
BENCHMARK(BM_WriteVerdict);
BENCHMARK(BM_WriteVerdict)->Threads(2)->UseRealTime();

// Hyperscan alone: the scans classify() makes (the tenant's main database over the
// text, a newline and the marked skeleton, and its part with start-of-match tracking
// over the text where a raw-text regex matched; its digit database over the text when
// that holds a digit, and its part with starts where one of its regexes matched), on
// buffers prepared beforehand and laid out one after another. No skeleton, no
// verdict: what the engine costs with these policies, a lower bound for any path that
// scans them.
void BM_Engine(benchmark::State& state) {
  const auto& c = corpus();
  struct Scan {
    const CompiledPolicy* policy;
    size_t begin, text_size, size;  // in `buffers`
    bool digit;
  };
  std::string buffers;
  std::vector<Scan> scans;
  hs_scratch_t* scratch = nullptr;
  text::Skeleton sk;
  for (const Comment& comment : c.comments) {
    const CompiledPolicy* policy = c.policies->find(comment.tenant);
    sk.offset = comment.text.size() + 1;
    sk.bytes.assign(comment.text);
    sk.bytes += '\n';
    text::build_skeleton(comment.text, sk);
    text::mark_for_scan(sk);
    const bool digit = policy->digit_database() &&
                       std::any_of(comment.text.begin(), comment.text.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
    scans.push_back({policy, buffers.size(), comment.text.size(), sk.offset + sk.size, digit});
    buffers.append(sk.bytes, 0, sk.offset + sk.size);
  }
  for (const auto& p : c.policies->policies())
    for (size_t part = 0; part < kDatabaseParts; ++part)
      if (const hs_database_t* db = p->database(static_cast<DatabasePart>(part));
          db && hs_alloc_scratch(db, &scratch) != HS_SUCCESS)
        state.SkipWithError("hs_alloc_scratch");
  struct Found {
    const CompiledPolicy* policy;
    const uint32_t* shared_ids = nullptr;  // as the classifier reads the hits of databases shared by the tenants
    size_t matches = 0;
    bool variable_length = false;
  } found;
  auto on_match = [](unsigned id, unsigned long long, unsigned long long, unsigned, void* ctx) -> int {
    auto* f = static_cast<Found*>(ctx);
    if (CompiledPolicy::own_pattern(f->shared_ids, id)) ++f->matches;
    return 0;
  };
  auto on_first_match = [](unsigned id, unsigned long long, unsigned long long, unsigned, void* ctx) -> int {
    auto* f = static_cast<Found*>(ctx);
    if (!CompiledPolicy::own_pattern(f->shared_ids, id)) return 0;
    if (needs_start_of_match(f->policy->pattern(id))) f->variable_length = true;
    else ++f->matches;
    return 0;
  };
  auto on_any_match = [](unsigned id, unsigned long long, unsigned long long, unsigned, void* ctx) -> int {
    return CompiledPolicy::own_pattern(static_cast<Found*>(ctx)->shared_ids, id) ? 1 : 0;
  };
  size_t i = bench::thread_start(state, kCorpusSize);
  for (auto _ : state) {
    const Scan& s = scans[i];
    const char* at = buffers.data() + s.begin;
    found.policy = s.policy;
    found.shared_ids = s.policy->shared_ids();
    found.variable_length = false;
    if (s.policy->database()) {
      hs_scan(s.policy->database(), at, static_cast<unsigned>(s.size), 0, scratch, on_first_match, &found);
      if (found.variable_length)
        hs_scan(s.policy->database(DatabasePart::main_starts), at, static_cast<unsigned>(s.text_size), 0, scratch,
                on_match, &found);
    }
    if (s.digit && hs_scan(s.policy->digit_database(), at, static_cast<unsigned>(s.text_size), 0, scratch, on_any_match,
                           &found) == HS_SCAN_TERMINATED)
      hs_scan(s.policy->database(DatabasePart::digit_starts), at, static_cast<unsigned>(s.text_size), 0, scratch,
              on_match, &found);
    i = (i + 1) % kCorpusSize;
  }
  benchmark::DoNotOptimize(found.matches);
  hs_free_scratch(scratch);
  report(state, c);
}
BENCHMARK(BM_Engine);
BENCHMARK(BM_Engine)->Threads(2)->UseRealTime();

// Scan latency per comment of at most 1 KB (skeleton + one scan + verdict), each
// timed alone: the percentiles a moderation queue feels, not the mean.
void BM_ScanLatency(benchmark::State& state) {
  const auto& c = corpus();
  ScanContext ctx;
  Verdict v;
  std::vector<double> ns;
  ns.reserve(kCorpusSize);
  for (auto _ : state) {
    ns.clear();
    for (const Comment& comment : c.comments) {
      if (comment.text.size() > 1024) continue;
      const auto begin = std::chrono::steady_clock::now();
      classify(*c.policies->find(comment.tenant), comment, ctx, v);
      benchmark::DoNotOptimize(v.action);
      ns.push_back(static_cast<double>((std::chrono::steady_clock::now() - begin).count()));
    }
  }
  std::sort(ns.begin(), ns.end());
  auto at = [&](double q) { return ns[std::min(ns.size() - 1, static_cast<size_t>(q * static_cast<double>(ns.size())))]; };
  state.counters["comments"] = static_cast<double>(ns.size());
  state.counters["p50_us"] = at(0.50) / 1e3;
  state.counters["p99_us"] = at(0.99) / 1e3;
  state.counters["p999_us"] = at(0.999) / 1e3;
  state.counters["max_us"] = ns.back() / 1e3;
}
BENCHMARK(BM_ScanLatency)->Unit(benchmark::kMillisecond);

// The whole classify path: JSON bytes -> decode -> scan -> verdict JSON.
void BM_ClassifyPath(benchmark::State& state) {
  bench::run_whole_path(state, corpus());
  report(state, corpus());
}
BENCHMARK(BM_ClassifyPath);
BENCHMARK(BM_ClassifyPath)->Threads(2)->UseRealTime();

// Hostile texts from 1 KB to 4 MB: the whole path must stay linear in the input
// (bench/run-benchmarks tabulates ns per byte across sizes).
const char* const kHostileUnits[] = {"a", "a.", "f u c k ", "\xF0\x9F\x98\x80", "\xE2\x80\x8B", "12 aaaa ",
                                     "((((", "$1,", "x@x"};

void BM_HostileText(benchmark::State& state) {
  const std::string unit = kHostileUnits[state.range(0)];
  std::string text;
  while (text.size() < static_cast<size_t>(state.range(1))) text += unit;
  std::string line = "{\"id\":\"h\",\"tenant\":\"" + corpus().policies->policies().front()->tenant() + "\",\"text\":";
  append_json_string(line, text);
  line += '}';
  CommentProcessor processor(corpus().policies, DecoderOptions{64 << 20, 32, {}});
  std::string out;
  // One untimed pass first: the buffers grow to the comment's size once (page faults
  // that a run of a few iterations would otherwise charge to the text), and an error
  // record instead of a verdict would time the wrong path.
  if (!processor.process_copy(line, out).ok) {
    state.SkipWithError("the hostile comment gave no verdict");
    return;
  }
  for (auto _ : state) {
    out.clear();
    benchmark::DoNotOptimize(processor.process_copy(line, out).ok);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(1));
}
BENCHMARK(BM_HostileText)
    ->ArgsProduct({benchmark::CreateDenseRange(0, std::size(kHostileUnits) - 1, 1),
                   benchmark::CreateRange(1 << 10, 4 << 20, 16)});

}  // namespace

int main(int argc, char** argv) { return bench::benchmark_main(argc, argv, g_patterns); }
