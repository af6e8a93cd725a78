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
#include <mutex>
#include <string>
#include <variant>

#include "classify/classifier.h"
#include "decode/decoder.h"
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
  bool redacted_text = false;              // verdicts carry the text with matched spans replaced
  size_t max_matches = 1000;               // matches listed per verdict (0: all); see VerdictOptions
  std::string transactional_id;            // default: civicsift-<group>-<hostname>
  int transaction_interval_ms = 100;       // how often a transaction commits
  int statistics_interval_ms = 5000;       // librdkafka statistics (consumer lag) for the observer
  std::filesystem::path patterns;
  std::filesystem::path cache_dir;
  std::map<std::string, std::string> kafka;  // passed to librdkafka untouched
};

// What the service reports while it works; ops/ turns it into metrics. Called from
// worker, delivery-report and statistics threads at once: implementations are
// thread-safe. Arguments never carry comment text or author.
class ServiceObserver {
 public:
  virtual ~ServiceObserver() = default;
  // A comment was classified (parse + scan + verdict took `seconds`).
  virtual void on_verdict(const Comment& comment, const Verdict& verdict, double seconds) = 0;
  // An input message could not be classified and goes to the dead-letter topic.
  virtual void on_invalid(DecodeErrorCode reason) = 0;
  // The broker acknowledged a verdict; `seconds` since the input message's timestamp.
  virtual void on_verdict_acknowledged(double seconds) = 0;
  virtual void on_produce_error() = 0;
  // A record was refused for good and a dead letter without the payload replaces it;
  // or that dead letter was refused too, and the input is given up on.
  virtual void on_record_replaced() = 0;
  virtual void on_undeliverable() = 0;
  // exactly_once: a transaction was aborted (an abortable error, or a lost assignment).
  virtual void on_transaction_aborted() = 0;
  // From librdkafka statistics; a negative lag is unknown.
  virtual void on_consumer_lag(std::string_view topic, int32_t partition, int64_t lag) = 0;
  // Partitions were revoked: their lag is no longer this instance's to report.
  virtual void on_partitions_revoked() = 0;
};

// Counts since start, for the summary and the tests.
struct ServiceCounters {
  std::atomic<uint64_t> consumed{0};
  std::atomic<uint64_t> verdicts{0};
  std::atomic<uint64_t> dead_letters{0};
  std::atomic<uint64_t> acknowledged{0};
  std::atomic<uint64_t> finished{0};  // input messages whose every record was acknowledged
  std::atomic<uint64_t> produce_errors{0};
  // Records refused for good (too large, say) and replaced by a dead letter without
  // the payload; and those whose dead letter failed too, whose offset moves on with
  // only this count and an error line to show for it.
  std::atomic<uint64_t> replaced_records{0};
  std::atomic<uint64_t> undeliverable{0};
  std::atomic<uint64_t> aborted_transactions{0};  // exactly_once: aborted and redone
  std::atomic<uint64_t> committed_transactions{0};  // exactly_once
  std::atomic<int> assigned_partitions{0};  // > 0: the service is consuming
  std::atomic<int> paused_partitions{0};    // paused while the workers are behind (a stalled output)
};

// How Service::run() ended.
struct ServiceOutcome {
  std::string error;              // empty on a clean stop
  bool settings_refused = false;  // librdkafka refused the settings: a configuration error
};

class Service {
 public:
  // `observer` (optional) must outlive run().
  Service(ServiceConfig config, std::shared_ptr<const PolicySet> policies, ServiceObserver* observer = nullptr);
  ~Service();

  // What librdkafka says of `config.brokers` and `config.kafka` (an unknown property, a
  // bad value), naming the key; empty when it accepts them. run() checks them too, and
  // reports what librdkafka refuses only when it creates its clients (a combination of
  // settings) as ServiceOutcome::settings_refused.
  static std::string check_kafka_settings(const ServiceConfig& config);

  // Runs until stop() or a fatal error.
  ServiceOutcome run();
  // Asks run() to finish: stop fetching, finish in-flight messages, flush, commit,
  // all within shutdown_timeout_ms from now (a drain under way keeps to that too, cut
  // short or given longer than its own budget).
  // Async-signal-safe.
  void stop();

  // Hot reload: comments already being classified finish on the old policies; every
  // later one is judged by `policies`, and its verdict names that version.
  void set_policies(std::shared_ptr<const PolicySet> policies);
  std::shared_ptr<const PolicySet> policies() const;

  const ServiceCounters& counters() const { return counters_; }
  // Consumed but not yet answered by an acknowledged record.
  uint64_t inflight() const;

 private:
  struct Impl;
  ServiceConfig config_;
  mutable std::mutex policies_mu_;
  std::shared_ptr<const PolicySet> policies_;
  std::atomic<uint64_t> policies_generation_{0};
  ServiceObserver* observer_;
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> stop_asked_at_{0};  // steady clock ticks of the first stop(); 0: none yet
  ServiceCounters counters_;
};

// "{tenant}" and "{action}" in `pattern` replaced.
std::string expand_topic(const std::string& pattern, std::string_view tenant, std::string_view action);

}  // namespace civicsift
