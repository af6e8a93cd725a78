// civicsift eval: verdict quality on a labelled corpus (TSV with a header row).
// "Flagged" means an action at or above --min-action; the labels say which rows
// should be flagged. Reports precision, recall, F1, false-positive rate, the same per
// category (rows flagged with it), and classification throughput.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "app/commands.h"
#include "classify/classifier.h"
#include "classify/verdict_writer.h"

namespace civicsift {
namespace {

struct Counts {
  uint64_t tp = 0, fp = 0, fn = 0, tn = 0;
  double precision() const { return tp + fp ? double(tp) / double(tp + fp) : 0; }
  double recall() const { return tp + fn ? double(tp) / double(tp + fn) : 0; }
  double f1() const {
    const double p = precision(), r = recall();
    return p + r > 0 ? 2 * p * r / (p + r) : 0;
  }
  double fpr() const { return fp + tn ? double(fp) / double(fp + tn) : 0; }
};

std::vector<std::string_view> split_tabs(std::string_view line) {
  std::vector<std::string_view> cols;
  size_t start = 0;
  while (true) {
    const size_t tab = line.find('\t', start);
    cols.push_back(line.substr(start, tab == std::string_view::npos ? std::string_view::npos : tab - start));
    if (tab == std::string_view::npos) break;
    start = tab + 1;
  }
  return cols;
}

}  // namespace

int run_eval(const EvalOptions& options) {
  auto policies = load_policies_or_report(options.policy);
  if (!policies) return 2;
  const CompiledPolicy* policy = policies->find(options.tenant);
  if (!policy) {
    spdlog::error("unknown tenant \"{}\"", options.tenant);
    return 2;
  }
  std::ifstream in(options.file, std::ios::binary);
  if (!in) {
    spdlog::error("cannot open {}: {}", options.file, std::strerror(errno));
    return 2;
  }
  std::string line;
  if (!std::getline(in, line)) {  // a folder opens as a stream too, and fails on reading
    std::error_code ec;
    spdlog::error("cannot read {}: {}", options.file,
                  std::filesystem::is_directory(options.file, ec) ? "it is a folder" : "it is empty");
    return 2;
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  const auto header = split_tabs(line);
  auto column = [&](const std::string& name) -> long {
    for (size_t i = 0; i < header.size(); ++i)
      if (header[i] == name) return static_cast<long>(i);
    return -1;
  };
  const long text_col = column(options.text_column), label_col = column(options.label_column);
  if (text_col < 0 || label_col < 0) {
    spdlog::error("{}: header has no column \"{}\"", options.file,
                  text_col < 0 ? options.text_column : options.label_column);
    return 2;
  }

  ScanContext context;
  Verdict verdict;
  Counts overall;
  std::array<Counts, kCategoryCount> by_category{};
  uint64_t rows = 0, skipped = 0;
  double seconds = 0;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;  // a blank line (often the last) is no row
    const auto cols = split_tabs(line);
    if (cols.size() <= static_cast<size_t>(std::max(text_col, label_col))) {
      ++skipped;
      continue;
    }
    const bool positive = cols[static_cast<size_t>(label_col)] == options.positive_label;
    Comment c;
    c.id = "eval";
    c.tenant = policy->tenant();
    c.text = cols[static_cast<size_t>(text_col)];
    const auto start = std::chrono::steady_clock::now();
    classify(*policy, c, context, verdict);
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ++rows;
    const bool flagged = verdict.action >= options.min_action;
    (flagged ? (positive ? overall.tp : overall.fp) : (positive ? overall.fn : overall.tn))++;
    for (size_t k = 0; k < kCategoryCount; ++k) {
      const bool hit = flagged && verdict.has(static_cast<Category>(k));
      Counts& cc = by_category[k];
      (hit ? (positive ? cc.tp : cc.fp) : (positive ? cc.fn : cc.tn))++;
    }
  }
  if (in.bad()) {
    spdlog::error("cannot read {}: {}", options.file, std::strerror(errno));
    return 2;
  }
  const double rate = seconds > 0 ? double(rows) / seconds : 0;

  if (options.json) {
    std::string out = "{\"filter\":\"civicsift\",\"policy\":";
    append_json_string(out, policy->label());
    fmt::format_to(std::back_inserter(out),
                   ",\"rows\":{},\"skipped\":{},\"positives\":{},\"precision\":{:.4f},\"recall\":{:.4f},"
                   "\"f1\":{:.4f},\"fpr\":{:.4f},\"comments_per_second\":{:.0f}}}\n",
                   rows, skipped, overall.tp + overall.fn, overall.precision(), overall.recall(), overall.f1(),
                   overall.fpr(), rate);
    fmt::print("{}", out);
    return 0;
  }
  fmt::print("corpus   {} ({} rows, {} labelled {}{})\n", options.file, rows, overall.tp + overall.fn,
             options.positive_label, skipped ? fmt::format(", {} malformed rows skipped", skipped) : "");
  fmt::print("policy   {}; flagged = action >= {}\n\n", policy->label(), to_string(options.min_action));
  fmt::print("{:<14} {:>9} {:>9} {:>7} {:>7} {:>8} {:>8}\n", "", "precision", "recall", "F1", "FPR", "flagged+",
             "flagged-");
  auto row = [](std::string_view name, const Counts& c) {
    fmt::print("{:<14} {:>9.3f} {:>9.3f} {:>7.3f} {:>7.4f} {:>8} {:>8}\n", name, c.precision(), c.recall(), c.f1(),
               c.fpr(), c.tp, c.fp);
  };
  row("overall", overall);
  for (size_t k = 0; k < kCategoryCount; ++k)
    if (by_category[k].tp + by_category[k].fp > 0) row(to_string(static_cast<Category>(k)), by_category[k]);
  fmt::print("\nthroughput {:.0f} comments/s (classification only, one thread)\n", rate);
  fmt::print("(per category: recall counts the labelled rows flagged with that category)\n");
  return 0;
}

}  // namespace civicsift
