#include <hs/hs.h>
#include <librdkafka/rdkafka.h>
#include <simdjson.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <system_error>

#ifdef CIVICSIFT_TCMALLOC
#include <gperftools/tcmalloc.h>
#endif

#include "app/commands.h"
#include "app/version.h"
#include "transport/dev_broker.h"

using namespace civicsift;

namespace {

#define CIVICSIFT_STR2(x) #x
#define CIVICSIFT_STR(x) CIVICSIFT_STR2(x)
constexpr const char* simdjson_version() { return CIVICSIFT_STR(SIMDJSON_VERSION); }

// The allocator in use (tcmalloc, or glibc's malloc in sanitizer builds): it matters
// for the Kafka service's throughput, so a performance report should say which.
std::string allocator_version() {
#ifdef CIVICSIFT_TCMALLOC
  return fmt::format("tcmalloc from {}", tc_version(nullptr, nullptr, nullptr));
#else
  return "glibc malloc";
#endif
}

// Threads beyond this only add contention (and each one a stack); 0 means one per core.
const CLI::Range kThreadRange(0, 256);

// Unsigned options would take "-1" (or " -1") as 2^64 - 1: refused instead.
const CLI::Validator kNotNegative(
    [](const std::string& s) {
      const size_t first = s.find_first_not_of(" \t");
      return first != std::string::npos && s[first] == '-' ? std::string("must not be negative") : std::string();
    },
    "");

// A real number within [lo, hi]. CLI11's ranges let "nan" through (every comparison with
// NaN is false), and an infinite rate would mean "unpaced" without saying so.
CLI::Validator finite_in(double lo, double hi, bool exclude_lo = false) {
  return CLI::Validator(
      [=](const std::string& s) {
        double v = 0;
        if (!CLI::detail::lexical_cast(s, v) || !std::isfinite(v)) return std::string("must be a finite number");
        if (v < lo || v > hi || (exclude_lo && v == lo))
          return fmt::format("must be {} {} and at most {}", exclude_lo ? "over" : "at least", lo, hi);
        return std::string();
      },
      "");
}

CLI::Option* add_policy_options(CLI::App& cmd, PolicyOptions& o, bool& no_cache) {
  auto* patterns = cmd.add_option("--patterns", o.patterns, "Policy folder (default: $CIVICSIFT_PATTERNS or ./patterns)");
  cmd.add_option("--cache-dir", o.cache_dir,
                 "Where compiled databases are cached (default: $CIVICSIFT_CACHE_DIR, $XDG_CACHE_HOME/civicsift or "
                 "~/.cache/civicsift)");
  cmd.add_flag("--no-cache", no_cache, "Always compile; read and write no cache");
  return patterns;
}

void resolve(PolicyOptions& o, bool no_cache, const char* argv0) {
  if (o.patterns.empty()) o.patterns = default_patterns_dir(argv0);
  if (no_cache) o.cache_dir.clear();
  else if (o.cache_dir.empty()) o.cache_dir = default_cache_dir();
}

// CLI11's message, except where it would repeat what explain was given: those words
// are comment text, which never goes to the logs.
std::string usage_problem(const CLI::ParseError& e, const CLI::App& explain_cmd) {
  if (explain_cmd && dynamic_cast<const CLI::ExtrasError*>(&e))
    return "explain takes the comment text as one argument: quote it (the unexpected arguments are not repeated "
           "here, as they may be comment text); run civicsift explain --help for more";
  if (explain_cmd && dynamic_cast<const CLI::ConversionError*>(&e))  // "--outbound=<text>"
    return "explain: a flag was given a value (not repeated here, as it may be comment text); "
           "run civicsift explain --help for more";
  // A text such as "-you idiot" reads as an option, so the text seems missing.
  if (explain_cmd && dynamic_cast<const CLI::RequiredError*>(&e) && explain_cmd.get_option("--tenant")->count() &&
      !explain_cmd.get_option("text")->count())
    return fmt::format("{}; a text that begins with - goes after -- (civicsift explain --tenant NAME -- TEXT)",
                       e.what());
  return fmt::format("{}; run with --help for more", e.what());
}

}  // namespace

int main(int argc, char** argv) {
  // A closed stdout (`civicsift scan ... | head`) is a write error to report, exit 1,
  // not a signal that kills the process before it can say so.
  std::signal(SIGPIPE, SIG_IGN);
  // Logs go to stderr, never stdout (that is for verdicts), and never hold comment text.
  auto logger = spdlog::stderr_color_mt("civicsift");
  spdlog::set_default_logger(logger);

  CLI::App app{"civicsift: classifies municipal social media comments against policy"};
  app.require_subcommand(1);
  app.fallthrough();  // --log-level and --log-format also after the subcommand
  app.set_version_flag("--version",
                       fmt::format("civicsift {} (Hyperscan {}, simdjson {}, librdkafka {}, {})", kVersion,
                                   hs_version(), simdjson_version(), rd_kafka_version_str(), allocator_version()));
  std::string log_level, log_format;
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error (default: info for run, warn otherwise)")
      ->check([](const std::string& s) {
        return is_log_level(s) ? std::string() : "expected trace, debug, info, warn or error";
      });
  // Neither check repeats the value: a misplaced comment text can land here.
  app.add_option("--log-format", log_format, "text or json (JSON lines, for log pipelines)")
      ->check([](const std::string& s) { return s == "text" || s == "json" ? std::string() : "expected text or json"; });

  ScanOptions scan;
  bool scan_no_cache = false;
  auto* scan_cmd = app.add_subcommand("scan", "Classify JSON lines (files or stdin) and print one verdict per line");
  add_policy_options(*scan_cmd, scan.policy, scan_no_cache);
  scan_cmd->add_option("--tenant", scan.default_tenant, "Tenant for comments that carry none");
  // Bounded: offsets into a line are 32-bit, and the reader's buffer is this large.
  scan_cmd->add_option("--max-bytes", scan.max_bytes, "Longest accepted line in bytes (at most 256 MiB)")
      ->check(CLI::Range(size_t{1}, size_t{256} << 20))
      ->capture_default_str();
  scan_cmd->add_option("--threads", scan.threads, "Worker threads (default: one per core)")->check(kThreadRange);
  scan_cmd->add_flag("--redacted-text", scan.redacted_text,
                     "Verdicts carry \"redacted_text\": the text with each matched span replaced by [category]");
  scan_cmd->add_option("files", scan.files, "JSON-lines files ('-' or none: stdin)");

  ExplainOptions explain;
  bool explain_no_cache = false;
  auto* explain_cmd = app.add_subcommand("explain", "Show which rules fire on a text, and why");
  add_policy_options(*explain_cmd, explain.policy, explain_no_cache);
  explain_cmd->add_option("--tenant", explain.tenant, "Tenant whose policy applies")->required();
  explain_cmd->add_flag("--outbound", explain.outbound, "Judge the text as a post by staff (direction outbound)");
  explain_cmd
      ->add_option("text", explain.text, "The comment text, quoted as one argument (after -- if it begins with -)")
      ->required();

  PolicyOptions check;
  bool check_no_cache = false;
  auto* check_cmd = app.add_subcommand("check", "Compile every policy and run every rule's examples");
  auto* check_patterns = add_policy_options(*check_cmd, check, check_no_cache);
  check_cmd->add_option("dir", check.patterns, "Policy folder (same as --patterns)")->excludes(check_patterns);

  EvalOptions eval;
  bool eval_no_cache = false;
  std::string eval_format, eval_min_action = "review";
  auto* eval_cmd = app.add_subcommand("eval", "Measure precision, recall and F1 on a labelled TSV corpus");
  add_policy_options(*eval_cmd, eval.policy, eval_no_cache);
  eval_cmd->add_option("--tenant", eval.tenant, "Tenant whose policy is measured")->required();
  auto* eval_format_opt =
      eval_cmd->add_option("--format", eval_format, "Column preset: olid (tweet/subtask_a/OFF) or sms (SMS/Label/spam)")
          ->check(CLI::IsMember({"olid", "sms"}));
  // A preset names all three columns: a column given beside it would be ignored.
  eval_format_opt->excludes(
      eval_cmd->add_option("--text-column", eval.text_column, "Header name of the text column")->capture_default_str());
  eval_format_opt->excludes(
      eval_cmd->add_option("--label-column", eval.label_column, "Header name of the label column")->capture_default_str());
  eval_format_opt->excludes(
      eval_cmd->add_option("--positive", eval.positive_label, "Label value of rows that should be flagged")
          ->capture_default_str());
  eval_cmd->add_option("--min-action", eval_min_action, "Least action that counts as flagged")
      ->check(CLI::IsMember({"review", "remove", "escalate"}))
      ->capture_default_str();
  eval_cmd->add_flag("--json", eval.json, "One JSON line of overall figures (for comparison tables)");
  eval_cmd->add_option("file", eval.file, "Labelled corpus (TSV with a header row)")->required();

  PolicyOptions clauses;
  auto* clauses_cmd = app.add_subcommand("clauses", "Print each policy's clause -> rules -> category -> action table (Markdown)");
  clauses_cmd->add_option("--patterns,dir", clauses.patterns,
                           "Policy folder (default: $CIVICSIFT_PATTERNS or ./patterns); read, not compiled: `check` "
                           "compiles");

  GenerateOptions generate;
  auto* generate_cmd = app.add_subcommand("generate", "Write a realistic multi-tenant comment stream as JSON lines");
  generate_cmd->add_option("--rate", generate.rate, "Comments per second (0: as fast as possible)")
      ->check(finite_in(0, 1e9))
      ->capture_default_str();
  generate_cmd->add_option("--count", generate.count, "How many (0: until interrupted)")
      ->check(kNotNegative)
      ->capture_default_str();
  generate_cmd->add_option("--seed", generate.seed, "Random seed (same seed, same stream)")
      ->check(kNotNegative)
      ->capture_default_str();
  generate_cmd->add_option("--violations", generate.violation_share, "Share of comments that break a rule")
      ->check(finite_in(0, 1))
      ->capture_default_str();

  RunOptions run;
  std::string run_brokers, run_group, run_patterns;
  unsigned run_threads = 0;
  auto* run_cmd = app.add_subcommand("run", "Consume comments from Kafka and publish verdicts (the service)");
  run_cmd->add_option("--config", run.config_file, "YAML configuration (see deploy/civicsift.yaml)");
  run_cmd->add_option("--brokers", run_brokers, "bootstrap.servers (overrides the file)");
  run_cmd->add_option("--group", run_group, "Consumer group id (default civicsift)");
  auto* run_threads_opt =
      run_cmd->add_option("--threads", run_threads, "Worker threads (0: one per core)")->check(kThreadRange);
  run_cmd->add_option("--patterns", run_patterns, "Policy folder");
  std::string run_metrics_address;
  int run_metrics_port = -1;
  bool run_watch = false;
  run_cmd->add_option("--metrics-address", run_metrics_address,
                      "host:port of /metrics, /healthz and /readyz (default 0.0.0.0:9464)");
  run_cmd->add_option("--metrics-port", run_metrics_port, "Port of the metrics endpoint (keeps the configured host)")
      ->check(CLI::Range(0, 65535));
  run_cmd->add_flag("--watch", run_watch, "Reload policies when the patterns folder changes (SIGHUP always reloads)");

  DevBrokerOptions dev;
  auto* dev_cmd = app.add_subcommand("dev-broker", "A local Kafka-protocol broker for development (librdkafka mock cluster)");
  dev_cmd->add_option("--port", dev.port, "Port on 127.0.0.1 (0: random)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  dev_cmd->add_option("--partitions", dev.partitions, "Partitions of comments, verdicts and comments.dlq (topics created on first use get the mock's 4)")
      ->check(CLI::Range(1, DevBroker::kMaxPartitions))
      ->capture_default_str();

  DemoOptions demo;
  bool demo_no_cache = false;
  auto* demo_cmd = app.add_subcommand("demo", "The whole product locally: broker, comment stream, classifier, live view");
  add_policy_options(*demo_cmd, demo.policy, demo_no_cache);
  demo_cmd->add_option("--rate", demo.rate, "Comments per second")->check(finite_in(0, 1e9, true))->capture_default_str();
  demo_cmd->add_option("--duration", demo.duration_s, "Seconds to run (0: until Ctrl-C)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  demo_cmd->add_option("--threads", demo.threads, "Classifier threads (default: one per core)")->check(kThreadRange);
  demo_cmd->add_option("--metrics-address", demo.metrics_address, "host:port of /metrics (empty: none)")
      ->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help and --version, on stdout
    // Every usage error exits 2, as the README says (CLI11's own codes run from 101 to
    // 115), and is logged like any other error, in the format asked for.
    configure_logging({log_format == "json" ? LogFormat::json : LogFormat::text, "warn"});
    spdlog::error("{}", usage_problem(e, *explain_cmd));
    return 2;
  }
  LogOptions log{log_format == "json" ? LogFormat::json : LogFormat::text,
                 !log_level.empty() ? log_level : *run_cmd ? "info" : "warn"};
  configure_logging(log);

  // stdio holds the output of check, explain, eval and clauses until it is flushed: a
  // full disk or a closed pipe must not pass for success, nor abort the process.
  const auto dispatch = [&]() -> int {
    if (*scan_cmd) {
      resolve(scan.policy, scan_no_cache, argv[0]);
      return run_scan(scan);
    }
    if (*explain_cmd) {
      resolve(explain.policy, explain_no_cache, argv[0]);
      return run_explain(explain);
    }
    if (*eval_cmd) {
      resolve(eval.policy, eval_no_cache, argv[0]);
      if (eval_format == "olid") eval.text_column = "tweet", eval.label_column = "subtask_a", eval.positive_label = "OFF";
      if (eval_format == "sms") eval.text_column = "SMS", eval.label_column = "Label", eval.positive_label = "spam";
      eval.min_action = *parse_action(eval_min_action);
      return run_eval(eval);
    }
    if (*generate_cmd) return run_generate(generate);
    if (*dev_cmd) return run_dev_broker(dev);
    if (*demo_cmd) {
      resolve(demo.policy, demo_no_cache, argv[0]);
      return run_demo(demo);
    }
    if (*run_cmd) {
      run.defaults.service.patterns = default_patterns_dir(argv[0]);
      run.defaults.service.cache_dir = default_cache_dir();
      if (!run_brokers.empty()) run.overrides["brokers"] = run_brokers;
      if (!run_group.empty()) run.overrides["group"] = run_group;
      if (run_threads_opt->count()) run.overrides["threads"] = std::to_string(run_threads);
      if (!run_patterns.empty()) run.overrides["patterns"] = run_patterns;
      if (!run_metrics_address.empty()) run.overrides["metrics_address"] = run_metrics_address;
      if (run_metrics_port >= 0) run.overrides["metrics_port"] = std::to_string(run_metrics_port);
      if (run_watch) run.overrides["watch_patterns"] = "true";
      run.log = log;
      run.log_level_given = !log_level.empty();
      run.log_format_given = !log_format.empty();
      return run_service(run);
    }
    if (*clauses_cmd) {
      if (clauses.patterns.empty()) clauses.patterns = default_patterns_dir(argv[0]);
      return run_clauses(clauses);
    }
    resolve(check, check_no_cache, argv[0]);
    return run_check(check);
  };
  try {
    const int rc = dispatch();
    if (rc != 0) return rc;  // a command that failed has said why
    // A failed flush discards the buffer and leaves only the stream's error flag.
    if (std::fflush(stdout) != 0) {
      spdlog::error("cannot write output: {}", std::strerror(errno));
      return 1;
    }
    if (std::ferror(stdout)) {
      spdlog::error("cannot write output: some of it was lost");
      return 1;
    }
    return 0;
  } catch (const std::system_error& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
}
