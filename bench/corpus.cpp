#include "corpus.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "classify/processor.h"
#include "decode/decoder.h"
#include "gen/generator.h"

namespace civicsift::bench {
namespace {

std::string g_corpus_file;  // --corpus: read the comments from here rather than generate them

// The first `count` lines of `path` into `lines`, each followed by '\n'; exits if the
// file is shorter (the benchmarks divide by their corpus size).
void read_corpus(const std::string& path, size_t count, std::string& lines, std::vector<size_t>& offsets) {
  std::ifstream in(path);
  std::string line;
  while (offsets.size() < count && std::getline(in, line)) {
    offsets.push_back(lines.size());
    lines += line;
    lines.push_back('\n');
  }
  if (offsets.size() < count) {
    std::fprintf(stderr, "--corpus %s: %zu lines, %zu needed\n", path.c_str(), offsets.size(), count);
    std::exit(2);
  }
}

}  // namespace

Corpus build_corpus(const std::string& patterns, size_t count, uint64_t seed) {
  const size_t kCorpusSize = count;
  Corpus c;
  auto loaded = load_policy_set(patterns, CompileOptions{default_cache_dir()});
  if (auto* e = std::get_if<PolicyError>(&loaded)) {
    std::fprintf(stderr, "%s\n", e->to_string().c_str());
    std::exit(2);
  }
  c.policies = std::get<std::shared_ptr<const PolicySet>>(loaded);
  std::vector<size_t> offsets;
  if (!g_corpus_file.empty()) {
    read_corpus(g_corpus_file, kCorpusSize, c.lines, offsets);
  } else {
    // The stream is spread over the tenants the policy folder defines.
    gen::GeneratorOptions options;
    options.seed = seed;
    options.tenants.clear();
    for (const auto& p : c.policies->policies()) options.tenants.push_back(p->tenant());
    gen::CommentGenerator generator(options);
    for (size_t i = 0; i < kCorpusSize; ++i) {
      offsets.push_back(c.lines.size());
      generator.next_json(c.lines);
      c.lines.push_back('\n');
    }
  }
  c.lines.append(64, ' ');
  offsets.push_back(c.lines.size() - 64);
  Decoder decoder;
  c.storage.reserve(kCorpusSize * 3);
  for (size_t i = 0; i < kCorpusSize; ++i) {
    c.json.emplace_back(c.lines.data() + offsets[i], offsets[i + 1] - offsets[i] - 1);
    auto decoded = decoder.decode(c.json.back());
    if (!std::holds_alternative<Comment>(decoded)) {
      std::fprintf(stderr, "corpus line %zu is no comment: %s\n", i + 1, std::get<DecodeError>(decoded).message.c_str());
      std::exit(2);
    }
    auto d = std::get<Comment>(std::move(decoded));
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
}

void run_whole_path(benchmark::State& state, const Corpus& corpus) {
  CommentProcessor processor(corpus.policies, DecoderOptions{});
  std::string out;
  size_t i = thread_start(state, corpus.size());
  for (auto _ : state) {
    out.clear();
    processor.process(corpus.json[i], std::nullopt, out);
    benchmark::DoNotOptimize(out.data());
    i = (i + 1) % corpus.size();
  }
}

int benchmark_main(int argc, char** argv, std::string& patterns) {
  for (int i = 1; i + 1 < argc;) {
    std::string* value = std::strcmp(argv[i], "--patterns") == 0 ? &patterns
                         : std::strcmp(argv[i], "--corpus") == 0 ? &g_corpus_file
                                                                 : nullptr;
    if (!value) {
      ++i;
      continue;
    }
    *value = argv[i + 1];
    for (int k = i; k + 2 <= argc; ++k) argv[k] = argv[k + 2];
    argc -= 2;
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace civicsift::bench
