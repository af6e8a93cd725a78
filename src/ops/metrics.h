// ops: civicsift's Prometheus metrics (prometheus-cpp). A Service reports to it as
// its ServiceObserver; scrapes read it as a Collectable. Labels hold tenants,
// actions, categories, error codes, topics and partitions: never comment data.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>

#include "policy/compiler.h"
#include "transport/service.h"

namespace civicsift {

class Metrics final : public ServiceObserver, public prometheus::Collectable {
 public:
  explicit Metrics(std::string_view build_version);

  // Gauges read from the service at each scrape: in-flight messages, assigned
  // partitions, messages consumed. The service must outlive the scrapes (or be unset).
  void watch_service(const Service* service);
  // civicsift_policy_info: one series per tenant, for the version now in force.
  void set_policies(const PolicySet& policies);
  void record_reload(std::string_view tenant, bool ok);

  // The exposition a scrape returns (Prometheus text format).
  std::string exposition() const;

  // prometheus::Collectable
  std::vector<prometheus::MetricFamily> Collect() const override;

  // ServiceObserver
  void on_verdict(const Comment& comment, const Verdict& verdict, double seconds) override;
  void on_invalid(DecodeErrorCode reason) override;
  void on_verdict_acknowledged(double seconds) override;
  void on_produce_error() override;
  void on_consumer_lag(std::string_view topic, int32_t partition, int64_t lag) override;
  void on_partitions_revoked() override;

 private:
  struct TenantSeries {
    std::array<prometheus::Counter*, 4> actions{};
    std::array<prometheus::Counter*, kCategoryCount> categories{};
  };
  TenantSeries& series_for(std::string_view tenant);

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& comments_;
  prometheus::Family<prometheus::Counter>& category_matches_;
  prometheus::Family<prometheus::Counter>& invalid_input_;
  prometheus::Counter& dead_letters_;
  prometheus::Counter& consumed_;
  prometheus::Histogram& scan_duration_;
  prometheus::Histogram& end_to_end_;
  prometheus::Family<prometheus::Gauge>& consumer_lag_;
  prometheus::Gauge& assigned_partitions_;
  prometheus::Gauge& inflight_;
  prometheus::Counter& produce_errors_;
  prometheus::Family<prometheus::Gauge>& policy_info_;
  prometheus::Family<prometheus::Counter>& policy_reloads_;

  std::shared_mutex tenants_mu_;
  std::map<std::string, TenantSeries, std::less<>> tenants_;
  std::mutex gauges_mu_;
  std::map<std::string, prometheus::Gauge*> policy_info_series_;  // by tenant
  std::map<std::pair<std::string, int32_t>, prometheus::Gauge*> lag_series_;
  std::atomic<const Service*> service_{nullptr};
  mutable std::mutex scrape_mu_;
  mutable uint64_t consumed_reported_ = 0;
};

}  // namespace civicsift
