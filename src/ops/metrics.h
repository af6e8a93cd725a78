// ops: civicsift's Prometheus metrics (prometheus-cpp). A Service reports to it as
// its ServiceObserver; scrapes read it as a Collectable. Labels hold tenants,
// actions, categories, error codes, topics and partitions: never comment data.
//
// What is reported once per message (verdicts by tenant, action and category; scan
// and end-to-end durations) goes to cells of the reporting thread, as Envoy's stats
// do: no lock and no cache line shared between cores on the hot path. A scrape adds
// the threads' cells up and moves what is new into the registry's series.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "policy/compiler.h"
#include "transport/service.h"

namespace civicsift {

class Metrics final : public ServiceObserver, public prometheus::Collectable {
 public:
  explicit Metrics(std::string_view build_version);
  ~Metrics() override;

  // Gauges read from the service at each scrape: in-flight messages, assigned
  // partitions, messages consumed. The service must outlive the scrapes (or be unset).
  void watch_service(const Service* service);
  // civicsift_policy_info: one series per tenant, for the version now in force.
  void set_policies(const PolicySet& policies);
  // What a reload did for one tenant: put a new version in force, found the same
  // version, or refused the tenant's file (the version in force stays).
  enum class Reload { success, unchanged, failure };
  void record_reload(std::string_view tenant, Reload result);

  // The exposition a scrape returns (Prometheus text format).
  std::string exposition() const;

  // prometheus::Collectable
  std::vector<prometheus::MetricFamily> Collect() const override;

  // ServiceObserver
  void on_verdict(const Comment& comment, const Verdict& verdict, double seconds) override;
  void on_invalid(DecodeErrorCode reason) override;
  void on_verdict_acknowledged(double seconds) override;
  void on_produce_error() override;
  void on_record_replaced() override;
  void on_undeliverable() override;
  void on_transaction_aborted() override;
  void on_consumer_lag(std::string_view topic, int32_t partition, int64_t lag) override;
  void on_partitions_revoked() override;

 private:
  struct TenantSeries {
    std::array<prometheus::Counter*, kActionCount> actions{};
    std::array<prometheus::Counter*, kCategoryCount> categories{};
    // What the scrapes moved into the series so far, summed over threads.
    std::array<uint64_t, kActionCount> actions_reported{};
    std::array<uint64_t, kCategoryCount> categories_reported{};
  };
  struct Shard;
  struct HistogramCells;
  TenantSeries& series_for(std::string_view tenant) const;  // under tenants_mu_
  // The calling thread's cells.
  Shard& shard();
  // Moves what the threads counted since the last scrape into the series (under scrape_mu_).
  void fold_shards() const;

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
  prometheus::Gauge& paused_partitions_;
  prometheus::Gauge& inflight_;
  prometheus::Counter& produce_errors_;
  prometheus::Counter& replaced_records_;
  prometheus::Counter& undeliverable_;
  prometheus::Counter& aborted_transactions_;
  prometheus::Family<prometheus::Gauge>& policy_info_;
  prometheus::Family<prometheus::Counter>& policy_reloads_;

  // What the scrapes moved into a histogram so far, summed over threads.
  struct HistogramReported {
    std::vector<uint64_t> counts;  // by bucket
    double sum = 0;
  };
  static void fold_histogram(prometheus::Histogram& into, const std::vector<uint64_t>& counts, double sum,
                             HistogramReported& reported);

  mutable std::mutex tenants_mu_;
  mutable std::map<std::string, TenantSeries, std::less<>> tenants_;
  const uint64_t id_;  // tells this instance's cells apart in a thread's cache
  mutable std::mutex shards_mu_;
  std::map<std::thread::id, std::unique_ptr<Shard>> shards_;
  mutable HistogramReported scan_reported_, end_to_end_reported_;
  std::mutex gauges_mu_;
  std::map<std::string, prometheus::Gauge*> policy_info_series_;  // by tenant
  std::map<std::pair<std::string, int32_t>, prometheus::Gauge*> lag_series_;
  std::atomic<const Service*> service_{nullptr};
  mutable std::mutex scrape_mu_;
  mutable uint64_t consumed_reported_ = 0;
};

}  // namespace civicsift
