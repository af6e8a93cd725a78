// app: the civicsift subcommands. Each returns the process exit code.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <map>

#include "app/run_config.h"
#include "ops/logging.h"
#include "policy/compiler.h"
#include "transport/service.h"

namespace civicsift {

struct PolicyOptions {
  std::filesystem::path patterns;   // policy folder
  std::filesystem::path cache_dir;  // compiled databases; empty: no cache
};

struct ScanOptions {
  PolicyOptions policy;
  std::string default_tenant;
  size_t max_bytes = 1 << 20;
  unsigned threads = 0;  // 0: one per core
  bool redacted_text = false;      // verdicts carry the text with matched spans replaced
  std::vector<std::string> files;  // empty or "-": stdin
};

struct ExplainOptions {
  PolicyOptions policy;
  std::string tenant;
  bool outbound = false;
  std::string text;
};

struct EvalOptions {
  PolicyOptions policy;
  std::string tenant;
  std::string file;
  std::string text_column = "text";
  std::string label_column = "label";
  std::string positive_label = "1";
  Action min_action = Action::review;
  bool json = false;
};

struct GenerateOptions {
  double rate = 0;       // comments per second; 0: unpaced
  uint64_t count = 0;    // 0: until interrupted
  uint64_t seed = 42;
  double violation_share = 0.12;
};

struct RunOptions {
  std::filesystem::path config_file;
  RunConfig defaults;
  // Flags given on the command line: brokers, group, threads, patterns,
  // metrics_address, metrics_port, watch_patterns. They override the file.
  std::map<std::string, std::string> overrides;
  LogOptions log;            // from the command line
  bool log_level_given = false;
  bool log_format_given = false;
};

struct DevBrokerOptions {
  int port = 9092;
  int partitions = 4;
};

struct DemoOptions {
  PolicyOptions policy;
  std::string metrics_address = "127.0.0.1:9464";  // empty: no endpoint
  double rate = 2000;       // comments per second
  double duration_s = 0;    // 0: until Ctrl-C
  unsigned threads = 0;
};

int run_scan(const ScanOptions& options);
int run_demo(const DemoOptions& options);
int run_service(const RunOptions& options);
int run_dev_broker(const DevBrokerOptions& options);
int run_generate(const GenerateOptions& options);
int run_eval(const EvalOptions& options);
int run_clauses(const PolicyOptions& options);
int run_explain(const ExplainOptions& options);
int run_check(const PolicyOptions& options);

// Loads and compiles the policy set, or prints one line naming file, rule and reason.
std::shared_ptr<const PolicySet> load_policies_or_report(const PolicyOptions& options);

// The patterns folder when none is given: $CIVICSIFT_PATTERNS, ./patterns, or the
// one next to the executable's build folder.
std::filesystem::path default_patterns_dir(const char* argv0);

}  // namespace civicsift
