// civicsift generate: the demo's synthetic comment stream as JSON lines, for kcat,
// files and benchmarks. Paced to --rate comments/s (0: as fast as possible).
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "app/commands.h"
#include "gen/generator.h"

namespace civicsift {

int run_generate(const GenerateOptions& options) {
  gen::GeneratorOptions g;
  g.seed = options.seed;
  g.violation_share = options.violation_share;
  gen::CommentGenerator generator(g);
  std::string out;
  const auto start = std::chrono::steady_clock::now();
  for (uint64_t i = 0; options.count == 0 || i < options.count; ++i) {
    out.clear();
    generator.next_json(out);
    out.push_back('\n');
    if (std::fwrite(out.data(), 1, out.size(), stdout) != out.size()) return 1;
    if (options.rate > 0) {
      const auto due = start + std::chrono::duration<double>(double(i + 1) / options.rate);
      if (due > std::chrono::steady_clock::now()) {
        std::fflush(stdout);
        std::this_thread::sleep_until(due);
      }
    }
  }
  return std::fflush(stdout) == 0 ? 0 : 1;
}

}  // namespace civicsift
