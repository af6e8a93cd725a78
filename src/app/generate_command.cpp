// civicsift generate: the demo's synthetic comment stream as JSON lines, for kcat,
// files and benchmarks. Paced to --rate comments/s (0: as fast as possible).
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
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
  const auto cannot_write = [] {
    spdlog::error("cannot write comments: {}", std::strerror(errno));
    return 1;
  };
  const auto start = std::chrono::steady_clock::now();
  for (uint64_t i = 0; options.count == 0 || i < options.count; ++i) {
    out.clear();
    generator.next_json(out);
    out.push_back('\n');
    if (std::fwrite(out.data(), 1, out.size(), stdout) != out.size()) return cannot_write();
    if (options.rate > 0) {
      const auto due = start + std::chrono::duration<double>(double(i + 1) / options.rate);
      if (due > std::chrono::steady_clock::now()) {
        if (std::fflush(stdout) != 0) return cannot_write();
        std::this_thread::sleep_until(due);
      }
    }
  }
  return std::fflush(stdout) == 0 ? 0 : cannot_write();
}

}  // namespace civicsift
