#include "ops/metrics.h"

#include <prometheus/text_serializer.h>

#include <algorithm>
#include <bit>
#include <deque>

namespace civicsift {
namespace {

std::atomic<uint64_t> next_metrics_id{1};

// A count one thread writes and scrapes read: a relaxed load and store, not a locked
// read-modify-write.
class Cell {
 public:
  void add() { value_.store(value_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }
  uint64_t get() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// Scans take microseconds; a 10 ms bucket still catches a multi-kilobyte outlier.
const prometheus::Histogram::BucketBoundaries kScanBuckets = {1e-6, 2e-6, 5e-6, 1e-5,   2e-5,   5e-5,
                                                              1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2};
// End to end spans the producer's linger, the broker and the consumer's fetch wait.
const prometheus::Histogram::BucketBoundaries kEndToEndBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                                  0.25,  0.5,    1,     2.5,  5,     10,   30};

// Moves what `total` grew by since it was last reported into `counter`. Totals only
// grow, so a total at or below the reported one adds nothing.
void advance(prometheus::Counter& counter, uint64_t total, uint64_t& reported) {
  if (total <= reported) return;
  counter.Increment(static_cast<double>(total - reported));
  reported = total;
}

}  // namespace

// One thread's observations of one histogram, bucketed as prometheus-cpp does (the
// first bucket whose bound is at least the value).
struct Metrics::HistogramCells {
  explicit HistogramCells(const prometheus::Histogram::BucketBoundaries& boundaries)
      : bounds(boundaries), counts(boundaries.size() + 1) {}
  void observe(double value) {
    counts[static_cast<size_t>(std::lower_bound(bounds.begin(), bounds.end(), value) - bounds.begin())].add();
    sum.store(sum.load(std::memory_order_relaxed) + value, std::memory_order_relaxed);
  }
  void add_to(std::vector<uint64_t>& total_counts, double& total_sum) const {
    for (size_t i = 0; i < counts.size(); ++i) total_counts[i] += counts[i].get();
    total_sum += sum.load(std::memory_order_relaxed);
  }
  const prometheus::Histogram::BucketBoundaries& bounds;
  std::vector<Cell> counts;  // the last one is above every bound
  std::atomic<double> sum{0};
};

// One thread's cells. Only that thread writes them.
struct Metrics::Shard {
  struct TenantCells {
    explicit TenantCells(std::string_view name) : tenant(name) {}
    std::string tenant;
    std::array<Cell, kActionCount> actions;
    std::array<Cell, kCategoryCount> categories;
  };
  // A deployment serves a handful of tenants: a walk beats hashing the name.
  TenantCells& cells_for(std::string_view tenant) {
    for (TenantCells& t : tenants)
      if (t.tenant == tenant) return t;
    std::lock_guard lock(mu);
    return tenants.emplace_back(tenant);
  }
  std::mutex mu;  // the owner appends to `tenants` under it; scrapes walk them under it
  std::deque<TenantCells> tenants;  // elements never move
  HistogramCells scan{kScanBuckets};
  HistogramCells end_to_end{kEndToEndBuckets};
};

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
                        .Help("Invalid input messages answered with a dead-letter record")
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
      paused_partitions_(prometheus::BuildGauge()
                             .Name("civicsift_paused_partitions")
                             .Help("Input partitions paused because the workers stayed behind (a stalled output)")
                             .Register(*registry_)
                             .Add({})),
      inflight_(prometheus::BuildGauge()
                    .Name("civicsift_inflight_messages")
                    .Help("Messages consumed whose records are not all acknowledged yet")
                    .Register(*registry_)
                    .Add({})),
      produce_errors_(prometheus::BuildCounter()
                          .Name("civicsift_produce_errors_total")
                          .Help("Records the producer failed to deliver (each is retried or replaced)")
                          .Register(*registry_)
                          .Add({})),
      replaced_records_(prometheus::BuildCounter()
                            .Name("civicsift_replaced_records_total")
                            .Help("Records refused for good (e.g. too large), replaced by a dead letter without the payload")
                            .Register(*registry_)
                            .Add({})),
      undeliverable_(prometheus::BuildCounter()
                         .Name("civicsift_undeliverable_total")
                         .Help("Input messages given up on: their replacing dead letter was refused too")
                         .Register(*registry_)
                         .Add({})),
      aborted_transactions_(prometheus::BuildCounter()
                                .Name("civicsift_aborted_transactions_total")
                                .Help("exactly_once: transactions aborted (an abortable error, then redone; or a lost "
                                      "assignment)")
                                .Register(*registry_)
                                .Add({})),
      policy_info_(prometheus::BuildGauge()
                       .Name("civicsift_policy_info")
                       .Help("The policy version in force for each tenant (value 1)")
                       .Register(*registry_)),
      policy_reloads_(prometheus::BuildCounter()
                          .Name("civicsift_policy_reloads_total")
                          .Help("Policy reloads by tenant and result (success: a new version in force; unchanged; failure)")
                          .Register(*registry_)),
      id_(next_metrics_id.fetch_add(1)),
      scan_reported_{std::vector<uint64_t>(kScanBuckets.size() + 1)},
      end_to_end_reported_{std::vector<uint64_t>(kEndToEndBuckets.size() + 1)} {
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

Metrics::~Metrics() = default;

void Metrics::watch_service(const Service* service) { service_.store(service); }

void Metrics::set_policies(const PolicySet& policies) {
  // Each tenant's series exist before its first comment or reload, for the same reason.
  for (const auto& p : policies.policies()) {
    std::lock_guard lock(tenants_mu_);
    series_for(p->tenant());
    for (const char* result : {"success", "unchanged", "failure"})
      policy_reloads_.Add({{"tenant", p->tenant()}, {"result", result}});
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

void Metrics::record_reload(std::string_view tenant, Reload result) {
  const char* name = result == Reload::success ? "success" : result == Reload::unchanged ? "unchanged" : "failure";
  policy_reloads_.Add({{"tenant", std::string(tenant)}, {"result", name}}).Increment();
}

Metrics::TenantSeries& Metrics::series_for(std::string_view tenant) const {
  auto [it, inserted] = tenants_.try_emplace(std::string(tenant));
  if (inserted) {
    for (unsigned a = 0; a < kActionCount; ++a)
      it->second.actions[a] =
          &comments_.Add({{"tenant", it->first}, {"action", std::string(to_string(static_cast<Action>(a)))}});
    for (unsigned c = 0; c < kCategoryCount; ++c)
      it->second.categories[c] = &category_matches_.Add(
          {{"tenant", it->first}, {"category", std::string(to_string(static_cast<Category>(c)))}});
  }
  return it->second;  // map nodes are stable; entries are never erased
}

Metrics::Shard& Metrics::shard() {
  // Found without a lock after a thread's first report. Instances are told apart by
  // id, not address: a new Metrics may take the address of one destroyed.
  thread_local uint64_t cached_for = 0;
  thread_local Shard* cached = nullptr;
  if (cached_for == id_) return *cached;
  std::lock_guard lock(shards_mu_);
  std::unique_ptr<Shard>& s = shards_[std::this_thread::get_id()];  // a finished thread's cells serve its id's next owner
  if (!s) s = std::make_unique<Shard>();
  cached_for = id_;
  cached = s.get();
  return *s;
}

void Metrics::on_verdict(const Comment& comment, const Verdict& verdict, double seconds) {
  Shard& s = shard();
  s.scan.observe(seconds);
  Shard::TenantCells& t = s.cells_for(comment.tenant);
  t.actions[static_cast<unsigned>(verdict.action)].add();
  for (uint32_t bits = verdict.categories; bits; bits &= bits - 1) t.categories[std::countr_zero(bits)].add();
}

void Metrics::on_invalid(DecodeErrorCode reason) {
  // Family::Add returns the existing series for known labels; error codes are few.
  invalid_input_.Add({{"reason", std::string(to_string(reason))}}).Increment();
  dead_letters_.Increment();
}

void Metrics::on_verdict_acknowledged(double seconds) { shard().end_to_end.observe(seconds < 0 ? 0 : seconds); }

void Metrics::on_produce_error() { produce_errors_.Increment(); }
void Metrics::on_record_replaced() { replaced_records_.Increment(); }
void Metrics::on_undeliverable() { undeliverable_.Increment(); }
void Metrics::on_transaction_aborted() { aborted_transactions_.Increment(); }

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

void Metrics::fold_histogram(prometheus::Histogram& into, const std::vector<uint64_t>& counts, double sum,
                             HistogramReported& reported) {
  std::vector<double> increments(counts.size());
  bool any = false;
  for (size_t i = 0; i < counts.size(); ++i) {
    increments[i] = static_cast<double>(counts[i] - reported.counts[i]);
    any = any || counts[i] != reported.counts[i];
  }
  if (!any) return;
  into.ObserveMultiple(increments, sum - reported.sum);
  reported.counts = counts;
  reported.sum = sum;
}

void Metrics::fold_shards() const {
  struct TenantTotals {
    std::array<uint64_t, kActionCount> actions{};
    std::array<uint64_t, kCategoryCount> categories{};
  };
  std::map<std::string, TenantTotals, std::less<>> tenants;
  std::vector<uint64_t> scan_counts(kScanBuckets.size() + 1), end_to_end_counts(kEndToEndBuckets.size() + 1);
  double scan_sum = 0, end_to_end_sum = 0;
  {
    std::lock_guard lock(shards_mu_);
    for (const auto& [thread, shard] : shards_) {
      std::lock_guard shard_lock(shard->mu);
      for (const Shard::TenantCells& cells : shard->tenants) {
        TenantTotals& totals = tenants[cells.tenant];
        for (size_t a = 0; a < totals.actions.size(); ++a) totals.actions[a] += cells.actions[a].get();
        for (size_t c = 0; c < kCategoryCount; ++c) totals.categories[c] += cells.categories[c].get();
      }
      shard->scan.add_to(scan_counts, scan_sum);
      shard->end_to_end.add_to(end_to_end_counts, end_to_end_sum);
    }
  }
  {
    std::lock_guard lock(tenants_mu_);
    for (const auto& [tenant, totals] : tenants) {
      TenantSeries& s = series_for(tenant);
      for (size_t a = 0; a < kActionCount; ++a) advance(*s.actions[a], totals.actions[a], s.actions_reported[a]);
      for (size_t c = 0; c < kCategoryCount; ++c)
        advance(*s.categories[c], totals.categories[c], s.categories_reported[c]);
    }
  }
  fold_histogram(scan_duration_, scan_counts, scan_sum, scan_reported_);
  fold_histogram(end_to_end_, end_to_end_counts, end_to_end_sum, end_to_end_reported_);
}

std::vector<prometheus::MetricFamily> Metrics::Collect() const {
  std::lock_guard lock(scrape_mu_);
  fold_shards();
  if (const Service* s = service_.load()) {
    // The counters live in the service; references reach them from this const method.
    advance(consumed_, s->counters().consumed.load(), consumed_reported_);
    inflight_.Set(static_cast<double>(s->inflight()));
    assigned_partitions_.Set(s->counters().assigned_partitions.load());
    paused_partitions_.Set(s->counters().paused_partitions.load());
  }
  return registry_->Collect();
}

std::string Metrics::exposition() const { return prometheus::TextSerializer().Serialize(Collect()); }

}  // namespace civicsift
