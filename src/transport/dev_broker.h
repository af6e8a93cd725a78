// transport: a Kafka-protocol broker for development, tests and demos, built on
// librdkafka's mock cluster. In memory, not durable, about 5 MB kept per partition
// (librdkafka 2.0.2): a tool, not a Kafka.
//
// The mock brokers listen on random ports; with a fixed `port`, a forwarder on
// 127.0.0.1:port passes bootstrap connections through, and clients then reach the
// brokers at the addresses the cluster advertises (127.0.0.1:random).
#pragma once

#include <memory>
#include <string>
#include <variant>
#include <vector>

typedef struct rd_kafka_mock_cluster_s rd_kafka_mock_cluster_t;

namespace civicsift {

class DevBroker {
 public:
  static constexpr int kMaxPartitions = 256;  // per topic; each keeps up to ~5 MB
  struct Options {
    int port = 0;  // 0: the cluster's own random port; else 1 to 65535
    int partitions = 4;  // 1 to kMaxPartitions
    int brokers = 1;
    std::vector<std::string> topics = {"comments", "verdicts", "comments.dlq"};
  };

  static std::variant<std::unique_ptr<DevBroker>, std::string> start(const Options& options);
  ~DevBroker();

  // "127.0.0.1:N" for bootstrap.servers.
  const std::string& bootstrap() const { return bootstrap_; }
  // For fault injection in tests (rdkafka_mock.h).
  rd_kafka_mock_cluster_t* cluster() const;

 private:
  struct Impl;
  explicit DevBroker(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  std::string bootstrap_;
};

}  // namespace civicsift
