#include <hs/hs.h>
#include <librdkafka/rdkafka.h>
#include <simdjson.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>

#include "app/commands.h"
#include "app/version.h"

using namespace civicsift;

namespace {

#define CIVICSIFT_STR2(x) #x
#define CIVICSIFT_STR(x) CIVICSIFT_STR2(x)
constexpr const char* simdjson_version() { return CIVICSIFT_STR(SIMDJSON_VERSION); }

void add_policy_options(CLI::App& cmd, PolicyOptions& o, bool& no_cache) {
  cmd.add_option("--patterns", o.patterns, "Policy folder (default: $CIVICSIFT_PATTERNS or ./patterns)");
  cmd.add_option("--cache-dir", o.cache_dir, "Where compiled databases are cached (default: ~/.cache/civicsift)");
  cmd.add_flag("--no-cache", no_cache, "Always compile; read and write no cache");
}

void resolve(PolicyOptions& o, bool no_cache, const char* argv0) {
  if (o.patterns.empty()) o.patterns = default_patterns_dir(argv0);
  if (no_cache) o.cache_dir.clear();
  else if (o.cache_dir.empty()) o.cache_dir = default_cache_dir();
}

}  // namespace

int main(int argc, char** argv) {
  // Logs go to stderr, never stdout (that is for verdicts), and never hold comment text.
  auto logger = spdlog::stderr_color_mt("civicsift");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

  CLI::App app{"civicsift: classifies municipal social media comments against policy"};
  app.require_subcommand(1);
  app.set_version_flag("--version",
                       fmt::format("civicsift {} (Hyperscan {}, simdjson {}, librdkafka {})", kVersion,
                                   hs_version(), simdjson_version(), rd_kafka_version_str()));
  std::string log_level = "warn";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")->capture_default_str();

  ScanOptions scan;
  bool scan_no_cache = false;
  auto* scan_cmd = app.add_subcommand("scan", "Classify JSON lines (files or stdin) and print one verdict per line");
  add_policy_options(*scan_cmd, scan.policy, scan_no_cache);
  scan_cmd->add_option("--tenant", scan.default_tenant, "Tenant for comments that carry none");
  scan_cmd->add_option("--max-bytes", scan.max_bytes, "Longest accepted line in bytes")->capture_default_str();
  scan_cmd->add_option("--threads", scan.threads, "Worker threads (default: one per core)");
  scan_cmd->add_option("files", scan.files, "JSON-lines files ('-' or none: stdin)");

  ExplainOptions explain;
  bool explain_no_cache = false;
  auto* explain_cmd = app.add_subcommand("explain", "Show which rules fire on a text, and why");
  add_policy_options(*explain_cmd, explain.policy, explain_no_cache);
  explain_cmd->add_option("--tenant", explain.tenant, "Tenant whose policy applies")->required();
  explain_cmd->add_flag("--outbound", explain.outbound, "Judge the text as a post by staff (direction outbound)");
  explain_cmd->add_option("text", explain.text, "The comment text")->required();

  PolicyOptions check;
  bool check_no_cache = false;
  auto* check_cmd = app.add_subcommand("check", "Compile every policy and run every rule's examples");
  add_policy_options(*check_cmd, check, check_no_cache);
  check_cmd->add_option("dir", check.patterns, "Policy folder (same as --patterns)");

  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::from_str(log_level));

  if (*scan_cmd) {
    resolve(scan.policy, scan_no_cache, argv[0]);
    return run_scan(scan);
  }
  if (*explain_cmd) {
    resolve(explain.policy, explain_no_cache, argv[0]);
    return run_explain(explain);
  }
  resolve(check, check_no_cache, argv[0]);
  return run_check(check);
}
