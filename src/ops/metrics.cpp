#include "ops/metrics.h"

#include <prometheus/text_serializer.h>

namespace civicsift {
namespace {

// Scans take microseconds; a 10 ms bucket still catches a multi-kilobyte outlier.
const prometheus::Histogram::BucketBoundaries kScanBuckets = {1e-6, 2e-6, 5e-6, 1e-5,   2e-5,   5e-5,
                                                              1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2};
// End to end spans the producer's linger, the broker and the consumer's fetch wait.
const prometheus::Histogram::BucketBoundaries kEndToEndBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                                  0.25,  0.5,    1,     2.5,  5,     10,   30};

}  // namespace

Metrics::Metrics(std::string_view build_version)
    : registry_(std::make_shared<prometheus::Registry>()),
      comments_(prometheus::BuildCounter()
                    .Name("civicsift_comments_total")
                    .Help("Comments classified, by tenant and action")
                    .Register(*registry_)),
      category_matches_(prometheus::BuildCounter()
                            .Name("civicsift_category_matches_total")
                            .Help("Verdicts carrying each category, by tenant")
                            .Register(*registry_)),
      invalid_input_(prometheus::BuildCounter()
                         .Name("civicsift_invalid_input_total")
                         .Help("Input messages that could not be classified, by error code")
                         .Register(*registry_)),
      dead_letters_(prometheus::BuildCounter()
                        .Name("civicsift_dead_letter_total")
                        .Help("Records published to the dead-letter topic")
                        .Register(*registry_)
                        .Add({})),
      consumed_(prometheus::BuildCounter()
                    .Name("civicsift_messages_consumed_total")
                    .Help("Input messages taken from Kafka")
                    .Register(*registry_)
                    .Add({})),
      scan_duration_(prometheus::BuildHistogram()
                         .Name("civicsift_scan_duration_seconds")
                         .Help("Parse, scan and verdict time per comment")
                         .Register(*registry_)
                         .Add({}, kScanBuckets)),
      end_to_end_(prometheus::BuildHistogram()
                      .Name("civicsift_end_to_end_latency_seconds")
                      .Help("From the input message's Kafka timestamp to the acknowledgement of its verdict")
                      .Register(*registry_)
                      .Add({}, kEndToEndBuckets)),
      consumer_lag_(prometheus::BuildGauge()
                        .Name("civicsift_consumer_lag_messages")
                        .Help("Messages behind the partition's end, from librdkafka statistics")
                        .Register(*registry_)),
      assigned_partitions_(prometheus::BuildGauge()
                               .Name("civicsift_assigned_partitions")
                               .Help("Input partitions this instance consumes")
                               .Register(*registry_)
                               .Add({})),
      inflight_(prometheus::BuildGauge()
                    .Name("civicsift_inflight_messages")
                    .Help("Messages consumed whose records are not all acknowledged yet")
                    .Register(*registry_)
                    .Add({})),
      produce_errors_(prometheus::BuildCounter()
                          .Name("civicsift_produce_errors_total")
                          .Help("Records the producer failed to deliver (each is retried)")
                          .Register(*registry_)
                          .Add({})),
      policy_info_(prometheus::BuildGauge()
                       .Name("civicsift_policy_info")
                       .Help("The policy version in force for each tenant (value 1)")
                       .Register(*registry_)),
      policy_reloads_(prometheus::BuildCounter()
                          .Name("civicsift_policy_reloads_total")
                          .Help("Policy reloads by tenant and result (success, failure)")
                          .Register(*registry_)) {
  // Every error code's series exists from the start: a rate over a series that
  // appears at its first increment misses that increment.
  for (int code = 0; code <= static_cast<int>(DecodeErrorCode::unknown_tenant); ++code)
    invalid_input_.Add({{"reason", std::string(to_string(static_cast<DecodeErrorCode>(code)))}});
  prometheus::BuildGauge()
      .Name("civicsift_build_info")
      .Help("The running build (value 1)")
      .Register(*registry_)
      .Add({{"version", std::string(build_version)}})
      .Set(1);
}

void Metrics::watch_service(const Service* service) { service_.store(service); }

void Metrics::set_policies(const PolicySet& policies) {
  // Each tenant's series exist before its first comment or reload, for the same reason.
  for (const auto& p : policies.policies()) {
    TenantSeries& s = series_for(p->tenant());
    std::unique_lock lock(tenants_mu_);
    for (unsigned c = 0; c < kCategoryCount; ++c)
      if (!s.categories[c])
        s.categories[c] = &category_matches_.Add(
            {{"tenant", p->tenant()}, {"category", std::string(to_string(static_cast<Category>(c)))}});
    for (const char* result : {"success", "failure"}) policy_reloads_.Add({{"tenant", p->tenant()}, {"result", result}});
  }
  std::lock_guard lock(gauges_mu_);
  for (auto& [tenant, gauge] : policy_info_series_) policy_info_.Remove(gauge);
  policy_info_series_.clear();
  for (const auto& p : policies.policies()) {
    auto& g = policy_info_.Add({{"tenant", p->tenant()}, {"version", p->spec().version}});
    g.Set(1);
    policy_info_series_[p->tenant()] = &g;
  }
}

void Metrics::record_reload(std::string_view tenant, bool ok) {
  policy_reloads_.Add({{"tenant", std::string(tenant)}, {"result", ok ? "success" : "failure"}}).Increment();
}

Metrics::TenantSeries& Metrics::series_for(std::string_view tenant) {
  {
    std::shared_lock lock(tenants_mu_);
    if (auto it = tenants_.find(tenant); it != tenants_.end()) return it->second;
  }
  std::unique_lock lock(tenants_mu_);
  auto [it, inserted] = tenants_.try_emplace(std::string(tenant));
  if (inserted) {
    for (unsigned a = 0; a < it->second.actions.size(); ++a)
      it->second.actions[a] =
          &comments_.Add({{"tenant", it->first}, {"action", std::string(to_string(static_cast<Action>(a)))}});
  }
  return it->second;  // map nodes are stable; entries are never erased
}

void Metrics::on_verdict(const Comment& comment, const Verdict& verdict, double seconds) {
  scan_duration_.Observe(seconds);
  TenantSeries& s = series_for(comment.tenant);
  s.actions[static_cast<unsigned>(verdict.action)]->Increment();
  if (!verdict.categories) return;
  for (unsigned c = 0; c < kCategoryCount; ++c) {
    if (!(verdict.categories & (1u << c))) continue;
    prometheus::Counter* counter;
    {
      std::shared_lock lock(tenants_mu_);
      counter = s.categories[c];
    }
    if (!counter) {
      std::unique_lock lock(tenants_mu_);
      if (!s.categories[c])
        s.categories[c] = &category_matches_.Add(
            {{"tenant", std::string(comment.tenant)}, {"category", std::string(to_string(static_cast<Category>(c)))}});
      counter = s.categories[c];
    }
    counter->Increment();
  }
}

void Metrics::on_invalid(DecodeErrorCode reason) {
  // Family::Add returns the existing series for known labels; error codes are few.
  invalid_input_.Add({{"reason", std::string(to_string(reason))}}).Increment();
  dead_letters_.Increment();
}

void Metrics::on_verdict_acknowledged(double seconds) { end_to_end_.Observe(seconds < 0 ? 0 : seconds); }

void Metrics::on_produce_error() { produce_errors_.Increment(); }

void Metrics::on_consumer_lag(std::string_view topic, int32_t partition, int64_t lag) {
  if (lag < 0) return;  // unknown until the partition's offsets are known
  std::lock_guard lock(gauges_mu_);
  auto key = std::make_pair(std::string(topic), partition);
  auto it = lag_series_.find(key);
  if (it == lag_series_.end())
    it = lag_series_.emplace(key, &consumer_lag_.Add({{"topic", key.first}, {"partition", std::to_string(partition)}}))
             .first;
  it->second->Set(static_cast<double>(lag));
}

void Metrics::on_partitions_revoked() {
  std::lock_guard lock(gauges_mu_);
  for (auto& [key, gauge] : lag_series_) consumer_lag_.Remove(gauge);
  lag_series_.clear();
}

std::vector<prometheus::MetricFamily> Metrics::Collect() const {
  if (const Service* s = service_.load()) {
    std::lock_guard lock(scrape_mu_);
    const uint64_t consumed = s->counters().consumed.load();
    // The counters live in the service; references reach them from this const method.
    if (consumed > consumed_reported_) consumed_.Increment(static_cast<double>(consumed - consumed_reported_));
    consumed_reported_ = std::max(consumed_reported_, consumed);
    inflight_.Set(static_cast<double>(s->inflight()));
    assigned_partitions_.Set(s->counters().assigned_partitions.load());
  }
  return registry_->Collect();
}

std::string Metrics::exposition() const { return prometheus::TextSerializer().Serialize(Collect()); }

}  // namespace civicsift
