#include "app/run_config.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <map>
#include <optional>
#include <set>

namespace civicsift {
namespace fs = std::filesystem;
namespace {

// A whole number from `v` into `out`, or why not: a value out of [low, high] is refused
// at start, not left to mean something odd later (0 queued messages stalls the service).
template <typename T>
std::optional<std::string> read_number(const YAML::Node& v, const fs::path& file, const std::string& key,
                                       long long low, long long high, T& out) {
  const auto n = v.as<long long>();
  if (n < low || n > high) return fmt::format("{}: key \"{}\" must be between {} and {}", file.string(), key, low, high);
  out = static_cast<T>(n);
  return std::nullopt;
}

std::string no_value(const fs::path& file, const std::string& key) {
  return fmt::format("{}: key \"{}\" has no value (leave the key out for its default, or write \"\" for none)",
                     file.string(), key);
}

// librdkafka properties civicsift sets itself, from its own key (named) or for its
// delivery guarantee (empty): under `kafka:` they would be overridden without a word.
const std::map<std::string, std::string> kOwnedProperties = {
    {"bootstrap.servers", "brokers"},
    {"metadata.broker.list", "brokers"},  // librdkafka's other name for bootstrap.servers
    {"group.id", "group"},
    {"transactional.id", "transactional_id"},
    {"enable.auto.offset.store", ""},  // offsets are stored only once a verdict is acknowledged
};
// Set by civicsift with delivery exactly_once: offsets commit inside transactions, and
// the input is read committed.
const std::set<std::string> kExactlyOnceProperties = {"enable.auto.commit", "isolation.level"};

constexpr long long kDayMs = 86'400'000;
constexpr long long kMinTransactionBudgetMs = 1000;

}  // namespace

std::variant<RunConfig, std::string> load_run_config(const fs::path& file, RunConfig run) {
  ServiceConfig& c = run.service;
  YAML::Node root;
  std::error_code ec;
  if (fs::is_directory(file, ec)) return fmt::format("{}: is a directory, not a configuration file", file.string());
  try {
    root = YAML::LoadFile(file.string());
  } catch (const std::exception& e) {  // YAML's, and the stream's own (an unreadable file)
    return fmt::format("{}: {}", file.string(), e.what());
  }
  // A file of comments only is an empty configuration: every key is optional.
  if (root.IsNull()) return run;
  if (!root.IsMap()) return fmt::format("{}: the configuration must be a mapping", file.string());
  std::set<std::string> seen;  // a repeated key is an error: yaml-cpp keeps both
  for (const auto& kv : root) {
    if (!kv.first.IsScalar())
      return fmt::format("{}: line {}: a key must be plain text", file.string(), kv.first.Mark().line + 1);
    const auto key = kv.first.as<std::string>();
    if (!seen.insert(key).second) return fmt::format("{}: key \"{}\" is given twice", file.string(), key);
    const YAML::Node& v = kv.second;
    // yaml-cpp would read an empty value (`copy_topic:`) as the text "null".
    if (v.IsNull()) return no_value(file, key);
    try {
      std::optional<std::string> bad;
      if (key == "brokers") c.brokers = v.as<std::string>();
      else if (key == "group") c.group = v.as<std::string>();
      else if (key == "input_topic") c.input_topic = v.as<std::string>();
      else if (key == "verdict_topic") c.verdict_topic = v.as<std::string>();
      else if (key == "dlq_topic") c.dlq_topic = v.as<std::string>();
      else if (key == "copy_topic") c.copy_topic = v.as<std::string>();
      else if (key == "threads") bad = read_number(v, file, key, 0, 256, c.threads);
      else if (key == "max_bytes") bad = read_number(v, file, key, 1, 256 << 20, c.max_bytes);
      else if (key == "max_queued") bad = read_number(v, file, key, 1, 10'000'000, c.max_queued);
      else if (key == "shutdown_timeout_ms") bad = read_number(v, file, key, 0, kDayMs, c.shutdown_timeout_ms);
      else if (key == "delivery") {
        const auto d = v.as<std::string>();
        if (d != "at_least_once" && d != "exactly_once")
          return fmt::format("{}: key \"delivery\" must be at_least_once or exactly_once", file.string());
        c.exactly_once = d == "exactly_once";
      } else if (key == "transactional_id") c.transactional_id = v.as<std::string>();
      else if (key == "transaction_interval_ms") bad = read_number(v, file, key, 1, kDayMs, c.transaction_interval_ms);
      else if (key == "patterns") c.patterns = v.as<std::string>();
      else if (key == "cache_dir") c.cache_dir = v.as<std::string>();
      else if (key == "redacted_text") c.redacted_text = v.as<bool>();
      else if (key == "max_matches") bad = read_number(v, file, key, 0, 1'000'000, c.max_matches);
      else if (key == "statistics_interval_ms") bad = read_number(v, file, key, 0, kDayMs, c.statistics_interval_ms);
      else if (key == "metrics_address") run.metrics_address = v.as<std::string>();
      else if (key == "watch_patterns") run.watch_patterns = v.as<bool>();
      else if (key == "watch_interval_ms") bad = read_number(v, file, key, 100, kDayMs, run.watch_interval_ms);
      else if (key == "log_format") {
        run.log_format = parse_log_format(v.as<std::string>());
        if (!run.log_format) return fmt::format("{}: key \"log_format\" must be text or json", file.string());
      } else if (key == "log_level") {
        run.log_level = v.as<std::string>();
        if (!is_log_level(run.log_level))
          return fmt::format("{}: key \"log_level\" must be trace, debug, info, warn, error, critical or off",
                             file.string());
      } else if (key == "kafka") {
        if (!v.IsMap()) return fmt::format("{}: \"kafka\" must be a mapping of librdkafka properties", file.string());
        std::set<std::string> properties;
        for (const auto& p : v) {
          const auto property = p.first.as<std::string>();
          if (!properties.insert(property).second)
            return fmt::format("{}: kafka.{} is given twice", file.string(), property);
          if (p.second.IsNull()) return no_value(file, "kafka." + property);
          if (const auto owned = kOwnedProperties.find(property); owned != kOwnedProperties.end())
            return owned->second.empty()
                       ? fmt::format("{}: kafka.{} is set by civicsift", file.string(), property)
                       : fmt::format("{}: kafka.{} is set by civicsift: use the key \"{}\"", file.string(), property,
                                     owned->second);
          c.kafka[property] = p.second.as<std::string>();
        }
      } else {
        return fmt::format("{}: unknown key \"{}\"", file.string(), key);
      }
      if (bad) return *bad;
    } catch (const YAML::Exception&) {
      return fmt::format("{}: key \"{}\" has a value of the wrong type", file.string(), key);
    }
  }
  for (const auto& property : kExactlyOnceProperties)
    if (c.exactly_once && c.kafka.count(property))
      return fmt::format("{}: kafka.{} is set by civicsift with delivery exactly_once", file.string(), property);
  // The same budget bounds starting transactions and each commit's drain: with none,
  // every commit that found anything in flight would stop the service.
  if (c.exactly_once && c.shutdown_timeout_ms < kMinTransactionBudgetMs)
    return fmt::format("{}: with delivery exactly_once, shutdown_timeout_ms must be at least {}", file.string(),
                       kMinTransactionBudgetMs);
  return run;
}

}  // namespace civicsift
