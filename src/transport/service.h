// transport: the Kafka service behind `civicsift run`. Consumes comments, classifies
// each once, publishes exactly one record per input message (a verdict, or the
// original bytes on the dead-letter topic), and commits an offset only after every
// record for it and for all earlier offsets of its partition was acknowledged.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <variant>

#include "policy/compiler.h"

namespace civicsift {

struct ServiceConfig {
  std::string brokers = "127.0.0.1:9092";
  std::string group = "civicsift";
  std::string input_topic = "comments";
  std::string verdict_topic = "verdicts";  // may use {tenant} and {action}
  std::string dlq_topic = "comments.dlq";
  std::string copy_topic;                  // optional, e.g. moderation.{tenant}.{action}
  unsigned threads = 0;                    // 0: one per core
  size_t max_bytes = 1 << 20;
  size_t max_queued = 20000;               // messages waiting for workers before consumption waits
  int shutdown_timeout_ms = 30000;         // flush and commit budget on SIGTERM
  bool exactly_once = false;               // delivery: exactly_once (Kafka transactions)
  std::string transactional_id;            // default: civicsift-<group>-<hostname>
  int transaction_interval_ms = 100;       // how often a transaction commits
  std::filesystem::path patterns;
  std::filesystem::path cache_dir;
  std::map<std::string, std::string> kafka;  // passed to librdkafka untouched
};

// Reads a YAML config file; unknown keys and bad values are errors naming the key.
std::variant<ServiceConfig, std::string> load_service_config(const std::filesystem::path& file, ServiceConfig base);

// Counts since start, for the summary and the tests.
struct ServiceCounters {
  std::atomic<uint64_t> consumed{0};
  std::atomic<uint64_t> verdicts{0};
  std::atomic<uint64_t> dead_letters{0};
  std::atomic<uint64_t> acknowledged{0};
  std::atomic<uint64_t> produce_errors{0};
  std::atomic<uint64_t> committed_offsets{0};
  std::atomic<int> assigned_partitions{0};  // > 0: the service is consuming
};

class Service {
 public:
  Service(ServiceConfig config, std::shared_ptr<const PolicySet> policies);
  ~Service();

  // Runs until stop() (or a fatal error); returns an error message, empty on a clean stop.
  std::string run();
  // Asks run() to finish: stop fetching, finish in-flight messages, flush, commit.
  void stop() { stopping_.store(true); }

  const ServiceCounters& counters() const { return counters_; }

 private:
  struct Impl;
  ServiceConfig config_;
  std::shared_ptr<const PolicySet> policies_;
  std::atomic<bool> stopping_{false};
  ServiceCounters counters_;
};

// "{tenant}" and "{action}" in `pattern` replaced.
std::string expand_topic(const std::string& pattern, std::string_view tenant, std::string_view action);

}  // namespace civicsift
