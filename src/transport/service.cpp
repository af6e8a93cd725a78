#include "transport/service.h"

#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>
#include <simdjson.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <unordered_map>
#include <utility>

#include <pthread.h>
#include <unistd.h>

#include "classify/processor.h"
#include "classify/verdict_writer.h"
#include "common/time.h"

namespace civicsift {
using Clock = std::chrono::steady_clock;

std::string expand_topic(const std::string& pattern, std::string_view tenant, std::string_view action) {
  std::string out;
  out.reserve(pattern.size() + 16);
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern.compare(i, 8, "{tenant}") == 0) {
      out += tenant;
      i += 7;
    } else if (pattern.compare(i, 8, "{action}") == 0) {
      out += action;
      i += 7;
    } else {
      out.push_back(pattern[i]);
    }
  }
  return out;
}

namespace {

// Offsets of one partition in flight, in offset order. An offset is done when its
// message was processed and every record produced for it was acknowledged; the
// committed position only moves over a done prefix.
struct PartitionTracker {
  std::mutex mu;
  std::string topic;
  int32_t partition = 0;
  std::deque<std::pair<int64_t, int>> pending;  // offset, outstanding holds
  int64_t next_offset = -1;  // after the last dispatched message (transactions)
  int64_t transaction_base = -1;  // first offset of the open transaction: where an abort rewinds to
  int64_t done_next = -1;      // after the done prefix: the offset to store next
  bool store_queued = false;   // waits in Impl::to_store

  // The holds on `offset`, or null. A partition's offsets are mostly consecutive, so
  // this is usually one subtraction; gaps (compaction, transaction markers) fall back
  // to a binary search. Under `mu`.
  int* holds(int64_t offset) {
    if (pending.empty()) return nullptr;
    const int64_t guess = offset - pending.front().first;
    if (guess >= 0 && guess < static_cast<int64_t>(pending.size()) && pending[static_cast<size_t>(guess)].first == offset)
      return &pending[static_cast<size_t>(guess)].second;
    auto it = std::lower_bound(pending.begin(), pending.end(), std::make_pair(offset, INT32_MIN));
    return it != pending.end() && it->first == offset ? &it->second : nullptr;
  }
};

// Lets one line through per interval and counts the others, for errors that come once
// per message (a topic librdkafka refuses, a broker failing every delivery): a line per
// message would bury the log. The counters and metrics keep the exact numbers; lines
// held back after the last one let through are only in them.
class LogThrottle {
 public:
  // Logs unless a line went out less than an interval ago; the next line that does go
  // out says how many were held back.
  template <typename... Args>
  void log(spdlog::level::level_enum level, fmt::format_string<Args...> format, Args&&... args) {
    uint64_t held_back = 0;
    {
      std::lock_guard lock(mu_);
      const auto now = Clock::now();
      if (logged_once_ && now - last_ < kInterval) {
        ++held_back_;
        return;
      }
      logged_once_ = true;
      last_ = now;
      held_back = std::exchange(held_back_, 0);
    }
    std::string line = fmt::format(format, std::forward<Args>(args)...);
    if (held_back) line += fmt::format(" (and {} more since the last such line)", held_back);
    spdlog::log(level, "{}", line);
  }

 private:
  static constexpr std::chrono::seconds kInterval{10};
  std::mutex mu_;
  bool logged_once_ = false;
  Clock::time_point last_;
  uint64_t held_back_ = 0;
};

// The msg_opaque of every produced record.
struct Delivery {
  std::shared_ptr<PartitionTracker> tracker;
  int64_t offset;
  int64_t source_timestamp_ms = -1;  // a verdict: when its input entered Kafka (end-to-end latency)
  bool replacement = false;          // a dead letter in place of a record refused for good
};

// A record produced again, off the worker that first produced it: it owns copies of
// its bytes, and waits in Impl::retries while it cannot be enqueued yet.
struct Retry {
  Clock::time_point due;
  std::string topic, value, key;
  rd_kafka_headers_t* headers;  // owned until enqueued
  Delivery* delivery;
};

// Refusals no retry can cure, because the record itself is at fault (a verdict with a
// huge redacted text, a dead letter carrying a 1 MiB input): what answers the input
// instead is a dead letter without the payload. Refusals of a destination (a topic
// name librdkafka rejects, a missing permission) keep the record's hold instead: they
// hit every record alike, and once fixed a restart answers them all.
bool refused_for_good(rd_kafka_resp_err_t err) {
  return err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE || err == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE ||
         err == RD_KAFKA_RESP_ERR_INVALID_RECORD || err == RD_KAFKA_RESP_ERR_INVALID_MSG;
}

// The headers of a dead letter: why, and where the input is (the input topic keeps it).
rd_kafka_headers_t* dead_letter_headers(std::string_view code, std::string_view message, const std::string& topic,
                                        int32_t partition, int64_t offset) {
  const std::string partition_text = std::to_string(partition), offset_text = std::to_string(offset);
  rd_kafka_headers_t* h = rd_kafka_headers_new(5);
  rd_kafka_header_add(h, "error.code", -1, code.data(), static_cast<ssize_t>(code.size()));
  rd_kafka_header_add(h, "error.message", -1, message.data(), static_cast<ssize_t>(message.size()));
  rd_kafka_header_add(h, "source.topic", -1, topic.data(), static_cast<ssize_t>(topic.size()));
  rd_kafka_header_add(h, "source.partition", -1, partition_text.data(), static_cast<ssize_t>(partition_text.size()));
  rd_kafka_header_add(h, "source.offset", -1, offset_text.data(), static_cast<ssize_t>(offset_text.size()));
  return h;
}

struct WorkItem {
  rd_kafka_message_t* message = nullptr;  // null: a control item
  std::shared_ptr<PartitionTracker> tracker;
  int32_t drop_partition = -1;            // control: forget this partition's state
};

// One worker's inbox. Items move in batches: a lock and at most one wake-up per batch
// rather than per message, which on a busy 2-core machine is most of the handoff cost.
class WorkQueue {
 public:
  void push(std::vector<WorkItem>& items) {
    if (items.empty()) return;
    bool was_empty;
    {
      std::lock_guard lock(mu_);
      was_empty = items_.empty();
      for (auto& item : items) items_.push_back(std::move(item));
    }
    items.clear();
    if (was_empty) cv_.notify_one();  // the one worker waits only on an empty queue
  }
  void push(WorkItem item) {
    std::vector<WorkItem> one;
    one.push_back(std::move(item));
    push(one);
  }
  // Takes everything queued (waiting while there is nothing); false once closed and empty.
  bool pop_all(std::deque<WorkItem>& out, const std::atomic<bool>& closed) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !items_.empty() || closed.load(); });
    if (items_.empty()) return false;
    out.swap(items_);
    return true;
  }
  void wake() { cv_.notify_all(); }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<WorkItem> items_;
};

// Trackers are found per message: by (topic, partition) without building a string.
struct TrackerKeyLess {
  using is_transparent = void;
  template <class A, class B>
  bool operator()(const A& a, const B& b) const {
    const int c = std::string_view(a.first).compare(std::string_view(b.first));
    return c < 0 || (c == 0 && a.second < b.second);
  }
};

// librdkafka's own log lines go through the service's logger, so `--log-format json`
// covers them too; left alone, librdkafka prints them raw on stderr. Its levels are syslog's.
void log_through_spdlog(const rd_kafka_t* rk, int level, const char* facility, const char* message) {
  // Left at debug: a connection failure (FAIL), which the error callback reports too,
  // and a `kafka:` key one client ignores (the keys go to both clients by design).
  const bool said_elsewhere = std::strcmp(facility, "FAIL") == 0 ||
                              (std::strcmp(facility, "CONFWARN") == 0 && std::strstr(message, "will be ignored by this"));
  const auto shown = said_elsewhere ? spdlog::level::debug
                     : level <= 3   ? spdlog::level::err
                     : level == 4   ? spdlog::level::warn
                     : level <= 6   ? spdlog::level::info
                                    : spdlog::level::debug;
  spdlog::log(shown, "kafka {} {}: {}", rd_kafka_name(rk), facility, message);
}

rd_kafka_conf_t* make_conf(const ServiceConfig& c, std::string& error) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set_log_cb(conf, &log_through_spdlog);
  char err[512];
  auto set = [&](const std::string& k, const std::string& v, const std::string& shown) {
    if (!error.empty()) return;
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK)
      error = fmt::format("{}: {}", shown, err);
  };
  set("bootstrap.servers", c.brokers, "brokers");
  for (const auto& [k, v] : c.kafka) set(k, v, "kafka." + k);
  if (!error.empty()) {
    rd_kafka_conf_destroy(conf);
    return nullptr;
  }
  return conf;
}

}  // namespace

struct Service::Impl {
  Service& self;
  const ServiceConfig& config;
  rd_kafka_t* consumer = nullptr;
  rd_kafka_t* producer = nullptr;
  unsigned threads = 1;
  std::vector<std::unique_ptr<WorkQueue>> queues;
  std::vector<std::thread> workers;
  std::atomic<bool> workers_closed{false};
  std::atomic<size_t> queued{0};
  std::mutex trackers_mu;
  std::map<std::pair<std::string, int32_t>, std::shared_ptr<PartitionTracker>, TrackerKeyLess> trackers;
  std::vector<std::vector<WorkItem>> dispatch;  // per worker: consumed, not yet handed over (consumer thread)
  LogThrottle produce_refused_log, delivery_failed_log, retry_refused_log, replaced_log, undeliverable_log;
  std::mutex retries_mu;
  std::deque<Retry> retries;  // records waiting to be produced again (delivery thread)
  static constexpr std::chrono::milliseconds kRetryBackoff{1000};
  std::mutex to_store_mu;
  std::vector<std::shared_ptr<PartitionTracker>> to_store;  // done prefixes grown since the last store
  std::mutex store_mu;  // one store_done_offsets() at a time (see there)
  Clock::time_point last_transaction = Clock::now();
  bool in_transaction = false;  // consumer thread only
  // A drain failed with messages consumed in the open transaction unanswered: it must
  // never commit, even once their partitions are revoked and no drain waits for them.
  bool transaction_doomed = false;  // consumer thread only
  // Partitions paused while the workers stay behind (consumer thread, rebalance
  // callback included). librdkafka resumes each from the message after the last one
  // it handed over.
  std::set<std::pair<std::string, int32_t>> paused;
  static constexpr std::chrono::milliseconds kPauseAfter{1000};
  std::mutex fatal_mu;
  std::string fatal;  // why the service stopped on its own
  // The stop's budget ran out with messages unanswered: they stay uncommitted (a
  // restart consumes them again), so their records are purged rather than waited for.
  std::atomic<bool> abandoned{false};
  std::atomic<unsigned> workers_running{0};
  std::vector<rd_kafka_topic_t*> known_topics;  // the fixed output topics, held from the start

  Impl(Service& s) : self(s), config(s.config_) {}
  // Also on the way out of a run() that failed to start.
  ~Impl() {
    for (rd_kafka_topic_t* topic : known_topics)
      if (topic) rd_kafka_topic_destroy(topic);
    if (consumer) rd_kafka_destroy(consumer);
    if (producer) rd_kafka_destroy(producer);
  }

  static constexpr size_t kDispatchBatch = 256;

  unsigned worker_of(int32_t partition) const { return static_cast<unsigned>(partition) % threads; }

  // A record not enqueued, or not delivered.
  void count_produce_error() {
    self.counters_.produce_errors++;
    if (self.observer_) self.observer_->on_produce_error();
  }

  // Releases one hold on `offset`. When the done prefix grows, its end waits to be
  // stored with the others (store_done_offsets); queued before `t->mu` is let go, so
  // drain() never sees the prefix done but its store not yet queued.
  void release(const std::shared_ptr<PartitionTracker>& t, int64_t offset) {
    std::lock_guard lock(t->mu);
    int* left = t->holds(offset);
    if (!left) return;
    --*left;
    bool grown = false;
    while (!t->pending.empty() && t->pending.front().second <= 0) {
      t->done_next = t->pending.front().first + 1;
      t->pending.pop_front();
      self.counters_.finished++;
      grown = true;
    }
    // Transactions send their offsets themselves.
    if (!grown || config.exactly_once || t->store_queued) return;
    t->store_queued = true;
    std::lock_guard store_lock(to_store_mu);  // after t->mu, as nowhere the other way round
    to_store.push_back(t);
  }

  // Stores the end of each grown done prefix, all in one call. Storing per message
  // took a partition list (three allocations) and librdkafka's partition lock for
  // every acknowledgement; this runs once per batch of delivery reports instead.
  // The delivery thread and the consumer thread (drain) both call it. One at a time:
  // otherwise a store taken off the list but not yet made could land after a commit
  // that drain() let through, or after a newer store of the same partition, moving
  // its offset back.
  void store_done_offsets() {
    std::lock_guard store_lock(store_mu);
    std::vector<std::shared_ptr<PartitionTracker>> grown;
    {
      std::lock_guard lock(to_store_mu);
      if (to_store.empty()) return;
      grown.swap(to_store);
    }
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(static_cast<int>(grown.size()));
    for (const auto& t : grown) {
      std::lock_guard lock(t->mu);
      t->store_queued = false;
      rd_kafka_topic_partition_list_add(list, t->topic.c_str(), t->partition)->offset = t->done_next;
    }
    rd_kafka_offsets_store(consumer, list);  // fails harmlessly for partitions since revoked
    rd_kafka_topic_partition_list_destroy(list);
  }

  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    auto* impl = static_cast<Impl*>(opaque);
    auto* d = static_cast<Delivery*>(m->_private);
    if (m->err && impl->abandoned.load()) {  // purged, or failed once nobody waits: hold kept, never retried
      delete d;
      return;
    }
    if (m->err && impl->config.exactly_once) {
      // Purged by an aborted transaction: the rewind consumes its input again.
      impl->release(d->tracker, d->offset);
      delete d;
      return;
    }
    if (m->err) {
      // Not acknowledged: the hold stays while the record is produced again, after a
      // pause (a broker refusing every record is not asked again at once).
      impl->count_produce_error();
      const std::string topic = rd_kafka_topic_name(m->rkt);
      const std::string_view key(static_cast<const char*>(m->key), m->key_len);
      if (refused_for_good(m->err)) {
        impl->replace(d, topic, key, m->err);
        return;
      }
      impl->delivery_failed_log.log(spdlog::level::warn, "delivery to {} failed ({}); retrying", topic,
                                    rd_kafka_err2str(m->err));
      rd_kafka_headers_t* headers = nullptr;
      rd_kafka_message_headers(m, &headers);
      impl->retry_later({Clock::now() + kRetryBackoff, topic,
                         std::string(static_cast<const char*>(m->payload), m->len), std::string(key),
                         headers ? rd_kafka_headers_copy(headers) : rd_kafka_headers_new(0), d});
      return;
    }
    impl->self.counters_.acknowledged++;
    if (impl->self.observer_ && d->source_timestamp_ms > 0)
      impl->self.observer_->on_verdict_acknowledged(static_cast<double>(now_ms() - d->source_timestamp_ms) / 1e3);
    impl->release(d->tracker, d->offset);
    delete d;
  }

  // Produces a record again (or a dead letter in its place), never blocking: mostly on
  // the thread that serves the delivery reports, which is what makes room in a full
  // queue; a full queue sends it to `retries` instead.
  void reproduce(Retry r) {
    const rd_kafka_resp_err_t err = rd_kafka_producev(
        producer, RD_KAFKA_V_TOPIC(r.topic.c_str()), RD_KAFKA_V_VALUE(r.value.data(), r.value.size()),
        RD_KAFKA_V_KEY(r.key.data(), r.key.size()), RD_KAFKA_V_HEADERS(r.headers),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(r.delivery), RD_KAFKA_V_END);
    if (!err) return;  // librdkafka owns the headers now
    count_produce_error();
    if (refused_for_good(err)) {
      rd_kafka_headers_destroy(r.headers);
      replace(r.delivery, r.topic, r.key, err);
      return;
    }
    retry_refused_log.log(spdlog::level::warn, "cannot produce to {} yet ({}); retrying", r.topic,
                          rd_kafka_err2str(err));
    r.due = Clock::now() + kRetryBackoff;
    retry_later(std::move(r));
  }

  void retry_later(Retry r) {
    std::lock_guard lock(retries_mu);
    retries.push_back(std::move(r));
  }

  // Produces the retries that are due (delivery thread).
  void retry_due() {
    if (abandoned.load()) return;  // left in `retries`, freed at the end
    std::vector<Retry> due;
    {
      std::lock_guard lock(retries_mu);
      const auto now = Clock::now();
      while (!retries.empty() && retries.front().due <= now) {
        due.push_back(std::move(retries.front()));
        retries.pop_front();
      }
    }
    for (Retry& r : due) reproduce(std::move(r));
  }

  // In place of a record refused for good: a dead letter without the payload, saying
  // why and where the input is. When that is refused too, the input is given up on:
  // counted, logged with its coordinates (never its content), its hold released so
  // that its partition's offsets move on.
  void replace(Delivery* d, std::string_view topic, std::string_view key, rd_kafka_resp_err_t why) {
    const PartitionTracker& t = *d->tracker;
    if (d->replacement) {
      self.counters_.undeliverable++;
      if (self.observer_) self.observer_->on_undeliverable();
      undeliverable_log.log(spdlog::level::err, "giving up on {} [{}] offset {}: its dead letter was refused too ({})",
                            t.topic, t.partition, d->offset, rd_kafka_err2str(why));
      release(d->tracker, d->offset);
      delete d;
      return;
    }
    self.counters_.replaced_records++;
    if (self.observer_) self.observer_->on_record_replaced();
    replaced_log.log(spdlog::level::err, "{} refused the record for {} [{}] offset {} ({}); a dead letter replaces it",
                     topic, t.topic, t.partition, d->offset, rd_kafka_err2str(why));
    d->replacement = true;
    d->source_timestamp_ms = -1;
    rd_kafka_headers_t* h = dead_letter_headers(
        "undeliverable", fmt::format("{} refused the record: {}", topic, rd_kafka_err2str(why)), t.topic, t.partition,
        d->offset);
    reproduce({Clock::now(), config.dlq_topic, {}, std::string(key), h, d});
  }

  // librdkafka reports most errors as transient and recovers by itself; a fatal one
  // (e.g. the idempotent producer losing its guarantees) stops the service.
  static void on_error(rd_kafka_t* rk, int err, const char* reason, void* opaque) {
    auto* impl = static_cast<Impl*>(opaque);
    if (err != RD_KAFKA_RESP_ERR__FATAL) {
      spdlog::warn("kafka: {}", reason);
      return;
    }
    char fatal_reason[512];
    rd_kafka_fatal_error(rk, fatal_reason, sizeof fatal_reason);
    spdlog::error("kafka fatal error: {}", fatal_reason);
    impl->stop_fatally(std::string("kafka fatal error: ") + fatal_reason);
  }

  static bool is_empty(simdjson::dom::element partition) {
    int64_t low = -1, high = -1;
    return !partition["lo_offset"].get(low) && !partition["hi_offset"].get(high) && low >= 0 && low == high;
  }

  // Consumer lag per partition, from librdkafka's statistics JSON.
  static int on_statistics(rd_kafka_t*, char* json, size_t len, void* opaque) {
    auto* impl = static_cast<Impl*>(opaque);
    if (!impl->self.observer_) return 0;
    simdjson::dom::parser parser;
    simdjson::dom::element root;
    if (parser.parse(json, len).get(root)) return 0;
    simdjson::dom::object topics;
    if (root["topics"].get(topics)) return 0;
    for (auto [topic, t] : topics) {
      simdjson::dom::object partitions;
      if (t["partitions"].get(partitions)) continue;
      for (auto [id, p] : partitions) {
        int64_t partition = -1, lag = -1;
        std::string_view state;
        if (p["partition"].get(partition) || partition < 0) continue;  // -1: the internal UA partition
        if (p["fetch_state"].get(state) || state != "active") continue;
        // Behind what was answered (stored offsets) if known, else behind the commit.
        // A partition that never held a message has neither, yet its lag is plainly 0.
        if (p["consumer_lag_stored"].get(lag) || lag < 0)
          if (p["consumer_lag"].get(lag) || lag < 0) lag = is_empty(p) ? 0 : -1;
        impl->self.observer_->on_consumer_lag(topic, static_cast<int32_t>(partition), lag);
      }
    }
    return 0;  // librdkafka frees the JSON
  }

  // Eager rebalancing (the default) hands over the whole assignment each time; with a
  // cooperative assignor (partition.assignment.strategy=cooperative-sticky) only the
  // partitions that move, which take librdkafka's incremental calls.
  static void on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts,
                           void* opaque) {
    auto* impl = static_cast<Impl*>(opaque);
    const char* protocol = rd_kafka_rebalance_protocol(rk);
    const bool incremental = protocol && std::string_view(protocol) == "COOPERATIVE";
    auto& assigned = impl->self.counters_.assigned_partitions;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      {
        std::lock_guard lock(impl->trackers_mu);
        for (int i = 0; i < parts->cnt; ++i) {
          auto t = std::make_shared<PartitionTracker>();
          t->topic = parts->elems[i].topic;
          t->partition = parts->elems[i].partition;
          impl->trackers[{t->topic, t->partition}] = t;
        }
      }
      spdlog::info("assigned {} partition(s)", parts->cnt);
      if (incremental) {
        log_rebalance_error(rd_kafka_incremental_assign(rk, parts));
        assigned.fetch_add(parts->cnt);
      } else {
        rd_kafka_assign(rk, parts);
        assigned.store(parts->cnt);
      }
      return;
    }
    // Revoked: finish what is in flight, commit it, forget the partitions' state. Lost
    // (the group went on without this member, after a session timeout say): the
    // partitions may already be another member's, which consumes them from the last
    // commit, so nothing is committed for them and an open transaction is aborted.
    const bool lost = rd_kafka_assignment_lost(rk);
    if (lost) spdlog::warn("lost {} partition(s) to the group: draining, committing nothing", parts->cnt);
    else spdlog::info("revoking {} partition(s): draining", parts->cnt);
    if (impl->drain_for_commit()) {
      const bool begin_next = !impl->self.stopping_.load();
      if (impl->config.exactly_once && lost) impl->abort_transaction(begin_next);
      else if (impl->config.exactly_once) impl->commit_transaction(begin_next);
      else if (!lost) rd_kafka_commit(rk, nullptr, 0);
    }
    impl->forget_paused(parts);
    {
      std::lock_guard lock(impl->trackers_mu);
      for (int i = 0; i < parts->cnt; ++i) {
        impl->trackers.erase({parts->elems[i].topic, parts->elems[i].partition});
        impl->queues[impl->worker_of(parts->elems[i].partition)]->push({nullptr, nullptr, parts->elems[i].partition});
      }
    }
    if (incremental) {
      log_rebalance_error(rd_kafka_incremental_unassign(rk, parts));
      assigned.fetch_sub(parts->cnt);
    } else {
      rd_kafka_assign(rk, nullptr);
      assigned.store(0);
    }
    if (impl->self.observer_) impl->self.observer_->on_partitions_revoked();
  }

  static void log_rebalance_error(rd_kafka_error_t* error) {
    if (!error) return;
    spdlog::error("rebalance: {}", rd_kafka_error_string(error));
    rd_kafka_error_destroy(error);
  }

  // Exactly-once: the records produced since the last commit and the input offsets
  // they answer commit together. Called on the consumer thread with workers idle.
  // On an abortable error everything since the last commit is rewound and redone.
  bool commit_transaction(bool begin_next) {
    if (!in_transaction) return true;
    if (transaction_doomed) return false;  // the service is stopping; the broker aborts it
    in_transaction = false;
    rd_kafka_topic_partition_list_t* offsets = rd_kafka_topic_partition_list_new(4);
    {
      std::lock_guard lock(trackers_mu);
      for (auto& [key, t] : trackers)
        if (t->next_offset >= 0) rd_kafka_topic_partition_list_add(offsets, t->topic.c_str(), t->partition)->offset = t->next_offset;
    }
    // As librdkafka's transactions example: a retriable error is retried, one that
    // requires it aborts (and everything since the last commit is redone), any other
    // stops the service (a restart fences this instance's transaction and resumes).
    auto retried = [](auto&& call) {
      rd_kafka_error_t* e = nullptr;
      for (int attempt = 1; attempt <= 3; ++attempt) {
        if (e) rd_kafka_error_destroy(e);
        e = call();
        if (!e || !rd_kafka_error_is_retriable(e)) break;
        spdlog::warn("transaction: {}; retrying", rd_kafka_error_string(e));
      }
      return e;
    };
    rd_kafka_error_t* error = nullptr;
    if (offsets->cnt > 0) {
      rd_kafka_consumer_group_metadata_t* meta = rd_kafka_consumer_group_metadata(consumer);
      error = retried([&] { return rd_kafka_send_offsets_to_transaction(producer, offsets, meta, -1); });
      rd_kafka_consumer_group_metadata_destroy(meta);
    }
    if (!error) error = retried([&] { return rd_kafka_commit_transaction(producer, -1); });
    bool ok = !error;
    if (error) {
      spdlog::warn("transaction failed: {}", rd_kafka_error_string(error));
      rd_kafka_error_t* abort_error =
          rd_kafka_error_txn_requires_abort(error) ? rd_kafka_abort_transaction(producer, -1) : nullptr;
      if (rd_kafka_error_txn_requires_abort(error) && !abort_error) {
        count_abort();
        rewind();
      } else {
        stop_fatally(std::string("transaction: ") + rd_kafka_error_string(abort_error ? abort_error : error));
      }
      if (abort_error) rd_kafka_error_destroy(abort_error);
      rd_kafka_error_destroy(error);
    }
    // Stored too, though only the transaction commits them: the consumer's lag
    // statistics (civicsift_consumer_lag_messages) read the stored offsets.
    if (ok && offsets->cnt > 0) {
      if (rd_kafka_resp_err_t e = rd_kafka_offsets_store(consumer, offsets))  // a partition revoked meanwhile
        spdlog::debug("storing committed offsets for the lag metric: {}", rd_kafka_err2str(e));
    }
    rd_kafka_topic_partition_list_destroy(offsets);
    if (ok) {
      self.counters_.committed_transactions++;
      std::lock_guard lock(trackers_mu);
      for (auto& [key, t] : trackers) t->transaction_base = -1;
    }
    last_transaction = Clock::now();
    if (begin_next) begin_transaction();
    return ok;
  }

  // Exactly-once, the assignment lost: the records produced since the last commit
  // answer messages that another member now consumes again from that commit, so they
  // are aborted (invisible to read_committed consumers), as librdkafka's transactions
  // example does. Called on the consumer thread with workers idle.
  void abort_transaction(bool begin_next) {
    if (!in_transaction) return;
    in_transaction = false;
    if (rd_kafka_error_t* e = rd_kafka_abort_transaction(producer, -1)) {
      stop_fatally(std::string("abort transaction: ") + rd_kafka_error_string(e));
      rd_kafka_error_destroy(e);
      return;
    }
    count_abort();
    last_transaction = Clock::now();
    if (begin_next) begin_transaction();
  }

  void count_abort() {
    self.counters_.aborted_transactions++;
    if (self.observer_) self.observer_->on_transaction_aborted();
  }

  void begin_transaction() {
    if (self.stopping_.load()) return;
    if (rd_kafka_error_t* e = rd_kafka_begin_transaction(producer)) {
      stop_fatally(std::string("begin transaction: ") + rd_kafka_error_string(e));
      rd_kafka_error_destroy(e);
    } else {
      in_transaction = true;
    }
  }

  // Stops the service, which then returns `why` (the first reason given).
  void stop_fatally(const std::string& why) {
    {
      std::lock_guard lock(fatal_mu);
      if (fatal.empty()) fatal = why;
    }
    self.stop();
  }

  // Exactly-once: the transaction may commit only once every message consumed in it
  // was answered; otherwise the service stops without committing, and the broker
  // aborts the open transaction when a restart fences it. Once stopping, the drain gets
  // what is left of the stop's budget, and when that runs out what is still unanswered
  // is abandoned.
  bool drain_for_commit() {
    const bool drained = drain(budget_ms());
    if (!drained && stop_deadline()) abandon();
    if (drained || !config.exactly_once) return true;
    transaction_doomed = true;
    stop_fatally(fmt::format("in-flight messages not answered within {} ms; stopped without committing the transaction",
                             config.shutdown_timeout_ms));
    return false;
  }

  // shutdown_timeout_ms, or once stopping what is left of it: the whole stop keeps to
  // one budget, which a deployment sizes its grace period on.
  int budget_ms() const {
    const auto stop = stop_deadline();
    if (!stop) return config.shutdown_timeout_ms;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*stop - Clock::now()).count();
    return static_cast<int>(std::max<int64_t>(0, left));
  }

  // When the stop's budget runs out, once stop() was called.
  std::optional<Clock::time_point> stop_deadline() const {
    const int64_t asked = self.stop_asked_at_.load();
    if (!asked) return std::nullopt;
    return Clock::time_point(Clock::duration(asked)) + std::chrono::milliseconds(config.shutdown_timeout_ms);
  }

  // The stop's budget ran out (an output stalled, say). Workers skip what they still
  // hold, and the producer's queued and in-flight records are purged, which also frees
  // a worker blocked on its full queue. None of their offsets is committed.
  void abandon() {
    if (self.inflight() == 0 || abandoned.exchange(true)) return;
    spdlog::warn("stop budget spent: {} message(s) left unanswered and uncommitted, to be consumed again on restart",
                 self.inflight());
    rd_kafka_purge(producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  }

  // After an aborted transaction: consume again from where it began. Known here,
  // not asked of the broker: the transaction's first offsets are those committed.
  void rewind() {
    rd_kafka_topic_partition_list_t* positions = rd_kafka_topic_partition_list_new(4);
    {
      std::lock_guard lock(trackers_mu);
      for (auto& [key, t] : trackers) {
        if (t->transaction_base >= 0) {
          rd_kafka_topic_partition_list_add(positions, t->topic.c_str(), t->partition)->offset = t->transaction_base;
          // The redone messages must not count as duplicates of themselves: the
          // partition's stateful rules start over, as after a restart.
          queues[worker_of(t->partition)]->push({nullptr, nullptr, t->partition});
        }
        t->next_offset = t->transaction_base >= 0 ? t->transaction_base : t->next_offset;
        t->transaction_base = -1;
      }
    }
    if (positions->cnt > 0) {
      if (rd_kafka_error_t* e = rd_kafka_seek_partitions(consumer, positions, config.shutdown_timeout_ms)) {
        spdlog::error("rewind after an aborted transaction failed: {}", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
      }
    }
    rd_kafka_topic_partition_list_destroy(positions);
  }

  // Waits until every consumed message was processed and acknowledged, and stores
  // their offsets.
  // Looks at least once, so a budget of 0 still finds an idle service idle; a stop
  // asked meanwhile cuts the wait to the stop's budget.
  bool drain(int timeout_ms) {
    // What the consumer thread still holds counts as in flight; once abandoned the
    // workers destroy it unanswered. A consumed message never destroyed would keep
    // rd_kafka_destroy(consumer) waiting for ever.
    flush_dispatch();
    if (abandoned.load()) return false;
    const auto started = Clock::now();
    const auto deadline = started + std::chrono::milliseconds(timeout_ms);
    while (true) {
      bool idle = queued.load() == 0;
      if (idle) {
        std::lock_guard lock(trackers_mu);
        for (auto& [key, t] : trackers) {
          std::lock_guard tl(t->mu);
          if (!t->pending.empty()) {
            idle = false;
            break;
          }
        }
      }
      if (idle) {
        store_done_offsets();  // for the commit that follows
        return true;
      }
      // Once stopping, the stop's budget governs a drain under way, shorter or longer
      // than its own: what it has not answered when that runs out is abandoned.
      const auto stop = stop_deadline();
      if (Clock::now() >= (stop ? *stop : deadline)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    spdlog::warn("drain gave up after {} ms; uncommitted messages will be consumed again",
                 std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count());
    return false;
  }

  // Where a record goes: the topic's handle, or why librdkafka refused the name.
  struct Destination {
    std::string topic;
    rd_kafka_topic_t* handle = nullptr;
    rd_kafka_resp_err_t refused = RD_KAFKA_RESP_ERR_NO_ERROR;
  };

  // A worker's handles of the topics it produces to. Naming the topic in every
  // produce call would have librdkafka look it up under a write lock on the whole
  // client, which its broker threads read-lock all the time.
  class TopicHandles {
   public:
    explicit TopicHandles(rd_kafka_t* producer) : producer_(producer) {}
    TopicHandles(const TopicHandles&) = delete;
    TopicHandles& operator=(const TopicHandles&) = delete;
    ~TopicHandles() {
      for (auto& [name, to] : by_name_)
        if (to.handle) rd_kafka_topic_destroy(to.handle);
    }
    // A refused name is remembered too: names come from the topic patterns, tenants
    // and actions, so they are few. References stay valid (map nodes do not move).
    const Destination& get(const std::string& name) {
      const auto it = by_name_.find(name);
      if (it != by_name_.end()) return it->second;
      Destination to{name, rd_kafka_topic_new(producer_, name.c_str(), nullptr), RD_KAFKA_RESP_ERR_NO_ERROR};
      if (!to.handle) to.refused = rd_kafka_last_error();
      return by_name_.emplace(name, std::move(to)).first->second;
    }

   private:
    rd_kafka_t* producer_;
    std::unordered_map<std::string, Destination> by_name_;
  };

  // One topic pattern's destinations by tenant and action, expanded and looked up
  // once per pair rather than per message. Tenants are those of the policies (an
  // unknown one is a dead letter), so the table stays small.
  class TopicRoutes {
   public:
    explicit TopicRoutes(const std::string& pattern) : pattern_(pattern) {}
    const Destination& get(TopicHandles& handles, std::string_view tenant, Action action) {
      auto it = by_tenant_.find(tenant);
      if (it == by_tenant_.end()) it = by_tenant_.emplace(std::string(tenant), Routes{}).first;
      const Destination*& to = it->second[static_cast<size_t>(action)];
      if (!to) to = &handles.get(expand_topic(pattern_, tenant, to_string(action)));
      return *to;
    }

   private:
    using Routes = std::array<const Destination*, kActionCount>;  // by action
    struct NameHash {
      using is_transparent = void;
      size_t operator()(std::string_view name) const { return std::hash<std::string_view>()(name); }
    };
    const std::string& pattern_;
    std::unordered_map<std::string, Routes, NameHash, std::equal_to<>> by_tenant_;
  };

  // Produces one record, which takes over one hold on `offset`: its delivery report
  // releases it.
  void produce(const Destination& to, std::string_view value, std::string_view key, rd_kafka_headers_t* headers,
               std::shared_ptr<PartitionTracker> tracker, int64_t offset, int64_t source_timestamp_ms = -1) {
    auto* d = new Delivery{std::move(tracker), offset, source_timestamp_ms};
    const rd_kafka_resp_err_t err = !to.handle ? to.refused : rd_kafka_producev(
        producer, RD_KAFKA_V_RKT(to.handle), RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
        RD_KAFKA_V_KEY(key.data(), key.size()), RD_KAFKA_V_HEADERS(headers),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY | RD_KAFKA_MSG_F_BLOCK), RD_KAFKA_V_OPAQUE(d), RD_KAFKA_V_END);
    if (!err) return;
    count_produce_error();
    // A topic the metadata does not hold yet (created late, the broker not creating
    // it): retried as a failed delivery is, for it may come (at least once; exactly
    // once keeps the hold, so the transaction cannot commit without the record).
    if (to.handle && !config.exactly_once &&
        (err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC || err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION)) {
      retry_refused_log.log(spdlog::level::warn, "cannot produce to {} yet ({}); retrying", to.topic,
                            rd_kafka_err2str(err));
      retry_later({Clock::now() + kRetryBackoff, to.topic, std::string(value), std::string(key), headers, d});
      return;
    }
    rd_kafka_headers_destroy(headers);
    if (to.handle && refused_for_good(err)) {
      replace(d, to.topic, key, err);
      return;
    }
    // Not enqueued, and no other record would be (e.g. an invalid topic name). The
    // record's hold is never released: the offset is not committed, so the message is
    // consumed again after a restart rather than lost.
    produce_refused_log.log(spdlog::level::err, "cannot produce to {}: {}", to.topic, rd_kafka_err2str(err));
    delete d;
  }

  // One more hold on `offset`, for a second record.
  static void add_hold(PartitionTracker& t, int64_t offset) {
    std::lock_guard lock(t.mu);
    if (int* holds = t.holds(offset)) ++*holds;
  }

  // A worker's own state: nothing here is shared, so classifying takes no lock.
  struct Worker {
    CommentProcessor processor;
    uint64_t generation;
    std::unordered_map<int32_t, StreamState> states;  // per partition: stateful rules stay correct
    std::string out;
    TopicHandles topics;
    TopicRoutes verdict_routes, copy_routes;
  };

  void work(unsigned index) {
    // The generation first: a reload between the two reads is then seen at the first message.
    const uint64_t generation = self.policies_generation_.load(std::memory_order_acquire);
    Worker w{CommentProcessor(self.policies(), DecoderOptions{config.max_bytes, 32, {}},
                              VerdictOptions{config.redacted_text, config.max_matches}),
             generation, {}, {}, TopicHandles(producer),
             TopicRoutes(config.verdict_topic), TopicRoutes(config.copy_topic)};
    std::deque<WorkItem> batch;
    while (queues[index]->pop_all(batch, workers_closed)) {
      for (WorkItem& item : batch) {
        if (abandoned.load(std::memory_order_relaxed) && item.message) {  // its offset stays uncommitted
          rd_kafka_message_destroy(item.message);
          queued--;
          continue;
        }
        process(w, item);
      }
      batch.clear();
    }
    workers_running--;
  }

  // Classifies one message and produces its one record (two with a copy topic), which
  // take over the message's hold.
  void process(Worker& w, WorkItem& item) {
    ServiceObserver* observer = self.observer_;
    if (!item.message) {
      w.states.erase(item.drop_partition);
      return;
    }
    if (self.policies_generation_.load(std::memory_order_acquire) != w.generation) {  // a reload
      w.generation = self.policies_generation_.load();
      w.processor.set_policies(self.policies());
    }
    rd_kafka_message_t* m = item.message;
    const std::string_view payload(static_cast<const char*>(m->payload), m->len);
    w.out.clear();
    const auto started = observer ? Clock::now() : Clock::time_point{};
    const ProcessResult r = w.processor.process_copy(payload, w.out, &w.states[m->partition]);
    if (r.ok) {
      if (observer)
        observer->on_verdict(w.processor.comment(), w.processor.verdict(),
                             std::chrono::duration<double>(Clock::now() - started).count());
      const Comment& c = w.processor.comment();
      const Action verdict_action = w.processor.verdict().action;
      const std::string_view action = to_string(verdict_action);
      rd_kafka_headers_t* h = rd_kafka_headers_new(3);
      rd_kafka_header_add(h, "tenant", -1, c.tenant.data(), static_cast<ssize_t>(c.tenant.size()));
      rd_kafka_header_add(h, "action", -1, action.data(), static_cast<ssize_t>(action.size()));
      // When the comment entered Kafka, so consumers can measure end-to-end latency.
      const int64_t source_timestamp_ms = rd_kafka_message_timestamp(m, nullptr);
      const std::string source_ts = std::to_string(source_timestamp_ms);
      rd_kafka_header_add(h, "source.timestamp", -1, source_ts.data(), static_cast<ssize_t>(source_ts.size()));
      if (!config.copy_topic.empty()) {
        add_hold(*item.tracker, m->offset);  // before either record can be acknowledged
        rd_kafka_headers_t* copy = rd_kafka_headers_copy(h);
        rd_kafka_header_add(copy, "verdict", -1, w.out.data(), static_cast<ssize_t>(w.out.size()));
        produce(w.copy_routes.get(w.topics, c.tenant, verdict_action), payload, c.id, copy, item.tracker, m->offset);
      }
      produce(w.verdict_routes.get(w.topics, c.tenant, verdict_action), w.out, c.id, h, std::move(item.tracker),
              m->offset, source_timestamp_ms);
      self.counters_.verdicts++;
    } else {
      // The original bytes, and why, on the dead-letter topic. The message text is
      // not logged: it may hold personal information.
      if (observer) observer->on_invalid(r.error);
      rd_kafka_headers_t* h =
          dead_letter_headers(to_string(r.error), r.message, item.tracker->topic, m->partition, m->offset);
      produce(w.topics.get(config.dlq_topic), payload, std::string_view(static_cast<const char*>(m->key), m->key_len), h,
              std::move(item.tracker), m->offset);
      self.counters_.dead_letters++;
    }
    rd_kafka_message_destroy(m);
    queued--;
  }

  // Takes one polled message for its worker; false if it was an event or is not ours
  // (consumer thread).
  bool take(rd_kafka_message_t* m) {
    if (m->err) {
      if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) spdlog::warn("consumer: {}", rd_kafka_message_errstr(m));
      rd_kafka_message_destroy(m);
      return false;
    }
    std::shared_ptr<PartitionTracker> tracker;
    {
      std::lock_guard lock(trackers_mu);
      auto it = trackers.find(std::pair<std::string_view, int32_t>(rd_kafka_topic_name(m->rkt), m->partition));
      if (it != trackers.end()) tracker = it->second;
    }
    if (!tracker) {  // not (or no longer) ours
      rd_kafka_message_destroy(m);
      return false;
    }
    {
      std::lock_guard lock(tracker->mu);
      // One hold while the message is processed; the record produced for it takes
      // it over, so a worker answering with one record touches no tracker lock.
      tracker->pending.emplace_back(m->offset, 1);
      tracker->next_offset = m->offset + 1;
      if (tracker->transaction_base < 0) tracker->transaction_base = m->offset;
    }
    self.counters_.consumed++;
    queued++;
    auto& pending = dispatch[worker_of(m->partition)];
    pending.push_back({m, std::move(tracker), -1});
    if (pending.size() >= kDispatchBatch) flush_dispatch();
    return true;
  }

  // Backpressure: while the workers are behind, take no more messages, so memory stays
  // bounded by max_queued and nothing is skipped. A wait is usually milliseconds. One
  // that lasts (the output's brokers are down and the workers wait on a full producer
  // queue) pauses the assigned partitions and keeps polling: a consumer that stops
  // polling for max.poll.interval.ms is evicted from its group, and its partitions'
  // unanswered messages are redone elsewhere.
  void wait_for_workers() {
    flush_dispatch();  // the workers need them to catch up
    const auto pause_at = Clock::now() + kPauseAfter;
    // Once paused, the partitions resume only when the workers are half-way through the
    // backlog: each pause discards what librdkafka had fetched ahead.
    size_t behind_from = config.max_queued;
    while (queued.load() >= behind_from && !self.stopping_.load()) {
      if (Clock::now() < pause_at) {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        continue;
      }
      if (behind_from == config.max_queued) {
        behind_from = std::max<size_t>(1, config.max_queued / 2);
        rd_kafka_topic_partition_list_t* assignment = nullptr;
        if (rd_kafka_assignment(consumer, &assignment) == RD_KAFKA_RESP_ERR_NO_ERROR) {
          pause(assignment);
          rd_kafka_topic_partition_list_destroy(assignment);
        }
        spdlog::warn("workers behind for {} ms (is the output stalled?): {} partition(s) paused", kPauseAfter.count(),
                     paused.size());
      }
      // Only a partition assigned since the pause can yield a message: it is taken
      // (its position is then known) and that partition paused too.
      if (rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer, 100)) {
        const std::string topic = m->rkt ? rd_kafka_topic_name(m->rkt) : "";
        const int32_t partition = m->partition;
        if (take(m)) {
          flush_dispatch();
          rd_kafka_topic_partition_list_t* one = rd_kafka_topic_partition_list_new(1);
          rd_kafka_topic_partition_list_add(one, topic.c_str(), partition);
          pause(one);
          rd_kafka_topic_partition_list_destroy(one);
        }
      }
    }
    if (paused.empty()) return;
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(static_cast<int>(paused.size()));
    for (const auto& [topic, partition] : paused) rd_kafka_topic_partition_list_add(list, topic.c_str(), partition);
    rd_kafka_resume_partitions(consumer, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (!self.stopping_.load()) spdlog::info("workers caught up: {} partition(s) resumed", paused.size());
    paused.clear();
    self.counters_.paused_partitions.store(0);
  }

  void pause(rd_kafka_topic_partition_list_t* parts) {
    rd_kafka_pause_partitions(consumer, parts);
    for (int i = 0; i < parts->cnt; ++i)
      if (!parts->elems[i].err) paused.emplace(parts->elems[i].topic, parts->elems[i].partition);
    self.counters_.paused_partitions.store(static_cast<int>(paused.size()));
  }

  // Revoked partitions leave paused: librdkafka would keep a partition paused if it
  // came back in a later assignment.
  void forget_paused(const rd_kafka_topic_partition_list_t* revoked) {
    rd_kafka_topic_partition_list_t* resume = rd_kafka_topic_partition_list_new(revoked->cnt);
    for (int i = 0; i < revoked->cnt; ++i)
      if (paused.erase({revoked->elems[i].topic, revoked->elems[i].partition}))
        rd_kafka_topic_partition_list_add(resume, revoked->elems[i].topic, revoked->elems[i].partition);
    if (resume->cnt) rd_kafka_resume_partitions(consumer, resume);
    rd_kafka_topic_partition_list_destroy(resume);
    self.counters_.paused_partitions.store(static_cast<int>(paused.size()));
  }

  // Hands the consumed messages to their workers (consumer thread).
  void flush_dispatch() {
    for (size_t i = 0; i < dispatch.size(); ++i) queues[i]->push(dispatch[i]);
  }

  ServiceOutcome run() {
    // librdkafka refusing the settings when it creates its clients is a configuration
    // error (a combination no single setting shows, as idempotence with acks=1).
    const auto refused = [](std::string message) { return ServiceOutcome{std::move(message), true}; };
    threads = config.threads ? config.threads : std::max(1u, std::thread::hardware_concurrency());
    std::string error;
    rd_kafka_conf_t* pconf = make_conf(config, error);
    if (!pconf) return refused(error);
    char err[512];
    if (!config.kafka.count("enable.idempotence"))  // ordered, no duplicates on retry
      rd_kafka_conf_set(pconf, "enable.idempotence", "true", err, sizeof err);
    if (config.exactly_once) {
      // One id per instance: replicas sharing an id would fence each other (the
      // group metadata sent with the offsets fences zombies, KIP-447).
      char host[256] = "host";
      gethostname(host, sizeof host - 1);
      const std::string id =
          config.transactional_id.empty() ? fmt::format("civicsift-{}-{}", config.group, host) : config.transactional_id;
      rd_kafka_conf_set(pconf, "transactional.id", id.c_str(), err, sizeof err);
    }
    if (!config.kafka.count("linger.ms") && !config.kafka.count("queue.buffering.max.ms"))  // one property, two names
      rd_kafka_conf_set(pconf, "linger.ms", "5", err, sizeof err);
    rd_kafka_conf_set_dr_msg_cb(pconf, &Impl::on_delivery);
    rd_kafka_conf_set_error_cb(pconf, &Impl::on_error);
    rd_kafka_conf_set_opaque(pconf, this);
    producer = rd_kafka_new(RD_KAFKA_PRODUCER, pconf, err, sizeof err);
    if (!producer) {  // on failure the configuration is still ours to free
      rd_kafka_conf_destroy(pconf);
      return refused(fmt::format("cannot create the producer: {}", err));
    }
    if (config.exactly_once) {
      rd_kafka_error_t* e = rd_kafka_init_transactions(producer, config.shutdown_timeout_ms);
      if (!e) e = rd_kafka_begin_transaction(producer);
      if (e) {
        const std::string message = fmt::format("transactions: {}", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        return {message};
      }
      in_transaction = true;
    }

    // Learn the output topics' partitions and leaders now: otherwise the first
    // records wait for a metadata round trip, a latency spike at every start. A new
    // topic handle asks for them in the background, while the group assigns the
    // input's partitions; waiting for the answer instead would hold up a stop
    // whenever the brokers do not answer.
    for (const std::string* topic : {&config.verdict_topic, &config.dlq_topic, &config.copy_topic})
      if (!topic->empty() && topic->find('{') == std::string::npos)
        known_topics.push_back(rd_kafka_topic_new(producer, topic->c_str(), nullptr));

    rd_kafka_conf_t* cconf = make_conf(config, error);
    if (!cconf) return refused(error);
    auto cset = [&](const char* k, const std::string& v) {
      if (rd_kafka_conf_set(cconf, k, v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK && error.empty())
        error = fmt::format("{}: {}", k, err);
    };
    cset("group.id", config.group);
    cset("enable.auto.offset.store", "false");  // offsets are stored only once acknowledged
    if (!config.kafka.count("auto.offset.reset")) cset("auto.offset.reset", "earliest");
    if (config.exactly_once) {
      cset("enable.auto.commit", "false");  // offsets commit inside transactions
      cset("isolation.level", "read_committed");
    }
    if (!error.empty()) {
      rd_kafka_conf_destroy(cconf);
      return refused(error);
    }
    if (self.observer_) {
      if (!config.kafka.count("statistics.interval.ms") && config.statistics_interval_ms > 0)
        cset("statistics.interval.ms", std::to_string(config.statistics_interval_ms));
      rd_kafka_conf_set_stats_cb(cconf, &Impl::on_statistics);
    }
    rd_kafka_conf_set_rebalance_cb(cconf, &Impl::on_rebalance);
    rd_kafka_conf_set_error_cb(cconf, &Impl::on_error);
    rd_kafka_conf_set_opaque(cconf, this);
    consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cconf, err, sizeof err);
    if (!consumer) {
      rd_kafka_conf_destroy(cconf);
      return refused(fmt::format("cannot create the consumer: {}", err));
    }
    rd_kafka_poll_set_consumer(consumer);

    rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, config.input_topic.c_str(), RD_KAFKA_PARTITION_UA);
    const rd_kafka_resp_err_t sub = rd_kafka_subscribe(consumer, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (sub) return {fmt::format("cannot subscribe to {}: {}", config.input_topic, rd_kafka_err2str(sub))};

    for (unsigned i = 0; i < threads; ++i) queues.push_back(std::make_unique<WorkQueue>());
    dispatch.resize(threads);
    // Named threads: `top -H` and profiles tell classification from Kafka client work.
    workers_running.store(threads);
    for (unsigned i = 0; i < threads; ++i)
      workers.emplace_back([this, i] {
        pthread_setname_np(pthread_self(), fmt::format("cs-work-{}", i).c_str());
        work(i);
      });
    std::atomic<bool> polling{true};
    std::thread poller([&] {  // serves delivery reports
      pthread_setname_np(pthread_self(), "cs-deliver");
      while (polling.load()) {
        rd_kafka_poll(producer, 100);
        store_done_offsets();
        retry_due();
      }
    });
    spdlog::info("consuming {} as group {} with {} worker(s)", config.input_topic, config.group, threads);

    while (!self.stopping_.load()) {
      if (queued.load() >= config.max_queued) {
        wait_for_workers();
        if (self.stopping_.load()) break;  // a stop takes nothing more
      }
      if (config.exactly_once &&
          Clock::now() - last_transaction > std::chrono::milliseconds(config.transaction_interval_ms) &&
          drain_for_commit())
        commit_transaction(true);
      // Messages already fetched are taken without waiting and handed over in one batch
      // when none is left (or the batch is full); only then does the poll wait.
      const bool holding = std::any_of(dispatch.begin(), dispatch.end(), [](const auto& d) { return !d.empty(); });
      rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer, holding ? 0 : config.exactly_once ? 20 : 100);
      if (!m) {
        flush_dispatch();
        continue;
      }
      take(m);
    }

    // Graceful stop, within shutdown_timeout_ms: finish in-flight work (the drain
    // waits for every record's acknowledgement), commit, leave the group.
    spdlog::info("stopping: draining in-flight messages");
    const bool drained = drain_for_commit();
    if (!config.exactly_once) rd_kafka_commit(consumer, nullptr, 0);  // stores cover only what was answered
    else if (drained) commit_transaction(false);
    rd_kafka_consumer_close(consumer);
    workers_closed.store(true);
    for (auto& q : queues) q->wake();
    // A worker may still block on a full producer queue (one refilled since the purge).
    while (abandoned.load() && workers_running.load() > 0) {
      rd_kafka_purge(producer, RD_KAFKA_PURGE_F_QUEUE);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    for (auto& w : workers) w.join();
    polling.store(false);
    poller.join();
    if (abandoned.load()) rd_kafka_purge(producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_flush(producer, budget_ms());  // delivery reports still due
    for (Retry& r : retries) {  // not produced in time: their offsets stay uncommitted
      rd_kafka_headers_destroy(r.headers);
      delete r.delivery;
    }
    std::lock_guard lock(fatal_mu);
    return {fatal};
  }
};

Service::Service(ServiceConfig config, std::shared_ptr<const PolicySet> policies, ServiceObserver* observer)
    : config_(std::move(config)), policies_(std::move(policies)), observer_(observer) {}
Service::~Service() = default;

void Service::stop() {
  // Ticks, not a time_point: lock-free, so a signal handler may call this. Never 0.
  int64_t none = 0;
  stop_asked_at_.compare_exchange_strong(none, std::max<int64_t>(1, Clock::now().time_since_epoch().count()));
  stopping_.store(true);
}

void Service::set_policies(std::shared_ptr<const PolicySet> policies) {
  {
    std::lock_guard lock(policies_mu_);
    policies_ = std::move(policies);
  }
  policies_generation_.fetch_add(1, std::memory_order_release);
}

std::shared_ptr<const PolicySet> Service::policies() const {
  std::lock_guard lock(policies_mu_);
  return policies_;
}

uint64_t Service::inflight() const {
  const uint64_t finished = counters_.finished.load(), consumed = counters_.consumed.load();
  return consumed > finished ? consumed - finished : 0;
}

std::string Service::check_kafka_settings(const ServiceConfig& config) {
  std::string error;
  if (rd_kafka_conf_t* conf = make_conf(config, error)) rd_kafka_conf_destroy(conf);
  return error;
}

ServiceOutcome Service::run() {
  Impl impl(*this);
  return impl.run();
}

}  // namespace civicsift
