// gen: a synthetic but realistic multi-tenant comment stream, for benchmarks, the
// demo and `civicsift generate`. Mostly benign talk about municipal life, with a
// configurable share of every kind of violation the policy packs cover, in English
// and (for saint-john) some French; lengths from one word to several kilobytes.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace civicsift::gen {

struct GeneratorOptions {
  uint64_t seed = 42;
  double violation_share = 0.12;  // fraction of comments that break a rule
  double long_share = 0.02;       // fraction of multi-paragraph comments (1-8 KB)
  double outbound_share = 0.03;   // fraction of staff posts (direction outbound)
  std::vector<std::string> tenants = {"middlesex-centre", "windsor", "saint-john", "peterborough", "pickering"};
};

class CommentGenerator {
 public:
  explicit CommentGenerator(GeneratorOptions options = {});

  // Appends one comment as a JSON object (no newline) to `out`.
  void next_json(std::string& out);
  // The author of the comment next_json() appended last: the Kafka key, as README
  // asks of producers (stateful rules keep their state per partition).
  const std::string& last_author() const { return last_author_; }
  // The text alone, for benchmarks of the layers below decoding.
  std::string next_text();

  uint64_t produced() const { return count_; }

 private:
  std::string benign_sentence(bool french);
  std::string violation(bool french);

  GeneratorOptions options_;
  std::mt19937_64 rng_;
  uint64_t count_ = 0;
  std::string last_text_;
  std::string last_author_;
};

}  // namespace civicsift::gen
