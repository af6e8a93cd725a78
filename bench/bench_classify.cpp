// Per-comment cost of each layer and of the whole classify path, on a realistic
// generated corpus (mostly benign municipal comments, ~12% violations, 2% long),
// spread over the tenants of the policy folder.
// Run: build/bench/bench_classify [--patterns DIR]  (Google Benchmark flags apply)
//   --patterns patterns           the five full policy packs (default)
//   --patterns tests/data/policy  a starter-size policy (6 rules, masked-vulgarity lexicon)
#include <benchmark/benchmark.h>

#include <cstring>
#include <string>
#include <vector>

#include "classify/processor.h"
#include "classify/verdict_writer.h"
#include "gen/generator.h"
#include "policy/compiler.h"
#include "text/skeleton.h"

using namespace civicsift;

namespace {

std::string g_patterns = CIVICSIFT_SOURCE_DIR "/patterns";
constexpr size_t kCorpusSize = 50'000;

struct Corpus {
  std::shared_ptr<const PolicySet> policies;
  std::string lines;                  // every comment JSON, each followed by '\n', padded at the end
  std::vector<std::string_view> json; // views into lines
  std::vector<Comment> comments;      // decoded once, for the layers below decoding
  std::vector<std::string> storage;   // the decoded texts and ids the comments view
  size_t text_bytes = 0;
};

const Corpus& corpus() {
  static const Corpus built = [] {
    Corpus c;
    auto loaded = load_policy_set(g_patterns, CompileOptions{default_cache_dir()});
    if (auto* e = std::get_if<PolicyError>(&loaded)) {
      std::fprintf(stderr, "%s\n", e->to_string().c_str());
      std::exit(2);
    }
    c.policies = std::get<std::shared_ptr<const PolicySet>>(loaded);
    // The stream is spread over the tenants the policy folder defines.
    gen::GeneratorOptions options;
    options.tenants.clear();
    for (const auto& p : c.policies->policies()) options.tenants.push_back(p->tenant());
    gen::CommentGenerator generator(options);
    std::vector<size_t> offsets;
    for (size_t i = 0; i < kCorpusSize; ++i) {
      offsets.push_back(c.lines.size());
      generator.next_json(c.lines);
      c.lines.push_back('\n');
    }
    c.lines.append(64, ' ');
    offsets.push_back(c.lines.size() - 64);
    Decoder decoder;
    c.storage.reserve(kCorpusSize * 3);
    for (size_t i = 0; i < kCorpusSize; ++i) {
      c.json.emplace_back(c.lines.data() + offsets[i], offsets[i + 1] - offsets[i] - 1);
      auto d = std::get<Comment>(decoder.decode(c.json.back()));
      c.storage.emplace_back(d.id);
      c.storage.emplace_back(d.tenant);
      c.storage.emplace_back(d.text);
      c.text_bytes += d.text.size();
    }
    for (size_t i = 0; i < kCorpusSize; ++i) {
      Comment comment;
      comment.id = c.storage[3 * i];
      comment.tenant = c.storage[3 * i + 1];
      comment.text = c.storage[3 * i + 2];
      c.comments.push_back(comment);
    }
    return c;
  }();
  return built;
}

void report(benchmark::State& state, const Corpus& c) {
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.counters["avg_text_bytes"] = static_cast<double>(c.text_bytes) / kCorpusSize;
}

void BM_Decode(benchmark::State& state) {
  const auto& c = corpus();
  Decoder decoder;
  size_t i = 0;
  for (auto _ : state) {
    auto r = decoder.decode(c.json[i]);
    benchmark::DoNotOptimize(r);
    i = (i + 1) % kCorpusSize;
  }
  report(state, c);
}
BENCHMARK(BM_Decode);

void BM_Skeleton(benchmark::State& state) {
  const auto& c = corpus();
  text::Skeleton sk;
  size_t i = 0;
  for (auto _ : state) {
    text::build_skeleton(c.comments[i].text, sk);
    benchmark::DoNotOptimize(sk.view().data());
    i = (i + 1) % kCorpusSize;
  }
  report(state, c);
}
BENCHMARK(BM_Skeleton);

void BM_ScanAndVerdict(benchmark::State& state) {
  const auto& c = corpus();
  ScanContext ctx;
  Verdict v;
  size_t i = 0;
  for (auto _ : state) {
    const Comment& comment = c.comments[i];
    classify(*c.policies->find(comment.tenant), comment, ctx, v);
    benchmark::DoNotOptimize(v.action);
    i = (i + 1) % kCorpusSize;
  }
  report(state, c);
}
BENCHMARK(BM_ScanAndVerdict);

void BM_WriteVerdict(benchmark::State& state) {
  const auto& c = corpus();
  ScanContext ctx;
  std::vector<Verdict> verdicts(1000);
  for (size_t k = 0; k < verdicts.size(); ++k)
    classify(*c.policies->find(c.comments[k].tenant), c.comments[k], ctx, verdicts[k]);
  std::string out;
  size_t i = 0;
  for (auto _ : state) {
    out.clear();
    write_verdict(out, c.comments[i], verdicts[i]);
    benchmark::DoNotOptimize(out.data());
    i = (i + 1) % verdicts.size();
  }
  report(state, c);
}
BENCHMARK(BM_WriteVerdict);

// The whole classify path: JSON bytes -> decode -> scan -> verdict JSON.
void BM_ClassifyPath(benchmark::State& state) {
  const auto& c = corpus();
  CommentProcessor processor(c.policies, DecoderOptions{});
  std::string out;
  size_t i = 0;
  for (auto _ : state) {
    out.clear();
    processor.process(c.json[i], std::nullopt, out);
    benchmark::DoNotOptimize(out.data());
    i = (i + 1) % kCorpusSize;
  }
  report(state, c);
}
BENCHMARK(BM_ClassifyPath);

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--patterns") == 0) {
      g_patterns = argv[i + 1];
      for (int k = i; k + 2 < argc + 1; ++k) argv[k] = argv[k + 2];
      argc -= 2;
      break;
    }
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
