// A realistic benchmark corpus: the generated comment stream (mostly benign municipal
// comments, ~12% violations, 2% of 1-8 KB), spread over the tenants of a policy
// folder, as JSON lines and decoded. Shared by the benchmarks in this folder.
#pragma once

#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "decode/comment.h"
#include "policy/compiler.h"

namespace civicsift::bench {

struct Corpus {
  std::shared_ptr<const PolicySet> policies;
  std::string lines;                   // every comment JSON, each followed by '\n', padded at the end
  std::vector<std::string_view> json;  // views into lines
  std::vector<Comment> comments;       // decoded once, for the layers below decoding
  std::vector<std::string> storage;    // the decoded texts and ids the comments view
  size_t text_bytes = 0;
  size_t size() const { return json.size(); }
};

// Compiles `patterns` (exits with the policy error if it cannot) and generates
// `count` comments with `seed`, or reads the first `count` lines of the file given to
// the binary as "--corpus FILE" (so every engine of a run reads the same comments).
Corpus build_corpus(const std::string& patterns, size_t count, uint64_t seed = 42);

// Where a benchmark thread starts in a corpus of `size` comments: with several threads,
// evenly apart, so they do not read the same comments at the same time (that would
// share the cache as two workers of a real stream never do).
inline size_t thread_start(const benchmark::State& state, size_t size) {
  return static_cast<size_t>(state.thread_index()) * size / static_cast<size_t>(state.threads());
}

// The whole classify path over the corpus, one comment per iteration: JSON bytes ->
// decode -> skeleton -> scan -> verdict JSON.
void run_whole_path(benchmark::State& state, const Corpus& corpus);

// main() of a benchmark binary: takes "--patterns DIR" into `patterns` and
// "--corpus FILE" (before Google Benchmark sees the flags), then runs the registered
// benchmarks.
int benchmark_main(int argc, char** argv, std::string& patterns);

}  // namespace civicsift::bench
