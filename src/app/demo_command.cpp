// civicsift demo: the whole product on one machine, no external service. An
// in-process broker, a generator of realistic comments for the five municipalities,
// the classifier service, and a live view of what it decides.
#include <fmt/format.h>
#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include "app/commands.h"
#include "common/time.h"
#include "app/version.h"
#include "gen/generator.h"
#include "ops/http_server.h"
#include "ops/metrics.h"
#include "transport/dev_broker.h"
#include "transport/service.h"

namespace civicsift {
namespace {

std::atomic<bool> g_demo_stop{false};
extern "C" void on_demo_signal(int) { g_demo_stop.store(true); }

struct Tally {
  std::mutex mu;
  uint64_t verdicts = 0, dead = 0;
  std::map<std::string, std::map<std::string, uint64_t>> by_tenant_action;
  std::map<std::string, uint64_t> categories;
  std::vector<double> latencies_ms;  // the latest window
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  const size_t k = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
  return v[k];
}

// Comments the broker acknowledged: what the demo expects a record for.
std::atomic<uint64_t> g_acknowledged{0};
extern "C" void on_comment_delivered(rd_kafka_t*, const rd_kafka_message_t* m, void*) {
  if (!m->err) g_acknowledged.fetch_add(1, std::memory_order_relaxed);
}

rd_kafka_t* make_client(rd_kafka_type_t type, const std::string& bootstrap, const char* group) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (type == RD_KAFKA_PRODUCER) rd_kafka_conf_set_dr_msg_cb(conf, on_comment_delivered);
  rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), err, sizeof err);
  rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
  if (group) {
    rd_kafka_conf_set(conf, "fetch.wait.max.ms", "10", err, sizeof err);
    rd_kafka_conf_set(conf, "group.id", group, err, sizeof err);
    rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", err, sizeof err);
  } else {
    rd_kafka_conf_set(conf, "linger.ms", "5", err, sizeof err);
  }
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof err);
  if (!rk) throw std::runtime_error(err);
  return rk;
}

// Reads verdicts and dead letters and tallies them for the view.
void read_outputs(const std::string& bootstrap, int partitions, Tally& tally, const std::atomic<bool>& stop) {
  rd_kafka_t* c = make_client(RD_KAFKA_CONSUMER, bootstrap, "civicsift-demo-view");
  rd_kafka_poll_set_consumer(c);
  // Assigned directly, not through a group join, so the view reads from the start.
  rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(2 * partitions);
  for (const char* topic : {"verdicts", "comments.dlq"})
    for (int p = 0; p < partitions; ++p)
      rd_kafka_topic_partition_list_add(topics, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  rd_kafka_assign(c, topics);
  rd_kafka_topic_partition_list_destroy(topics);
  while (!stop.load()) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(c, 100);
    if (!m) continue;
    if (!m->err) {
      std::lock_guard lock(tally.mu);
      if (std::string_view(rd_kafka_topic_name(m->rkt)) == "comments.dlq") {
        ++tally.dead;
      } else {
        ++tally.verdicts;
        rd_kafka_headers_t* h = nullptr;
        std::string tenant, action;
        int64_t source_ts = 0;
        if (!rd_kafka_message_headers(m, &h)) {
          const void* v;
          size_t n;
          if (!rd_kafka_header_get_last(h, "tenant", &v, &n)) tenant.assign(static_cast<const char*>(v), n);
          if (!rd_kafka_header_get_last(h, "action", &v, &n)) action.assign(static_cast<const char*>(v), n);
          if (!rd_kafka_header_get_last(h, "source.timestamp", &v, &n))
            source_ts = std::stoll(std::string(static_cast<const char*>(v), n));
        }
        ++tally.by_tenant_action[tenant][action];
        const std::string_view value(static_cast<const char*>(m->payload), m->len);
        const auto b = value.find("\"categories\":[");
        const auto e = value.find(']', b);
        for (size_t p = b + 14; b != std::string_view::npos && p < e;) {
          const auto q = value.find('"', p + 1);
          tally.categories[std::string(value.substr(p + 1, q - p - 1))]++;
          p = q + 2;
        }
        if (source_ts > 0) {
          if (tally.latencies_ms.size() > 50000) tally.latencies_ms.clear();
          tally.latencies_ms.push_back(static_cast<double>(now_ms() - source_ts));
        }
      }
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_assign(c, nullptr);
  rd_kafka_destroy(c);
}

// False once stdout is gone (`demo | head`): the metrics server ignores SIGPIPE, so
// without this the demo would run on, drawing into a closed pipe.
bool draw(Tally& tally, double elapsed_s, uint64_t produced, bool tty, bool final, const std::string& metrics_url) {
  std::lock_guard lock(tally.mu);
  static constexpr std::array<const char*, 4> kActions = {"allow", "review", "remove", "escalate"};
  std::string out;
  if (tty && !final) out += "\x1b[H\x1b[2J";
  out += fmt::format("civicsift demo  {:6.1f} s   produced {}   verdicts {}   dead letters {}   {:.0f} comments/s\n",
                     elapsed_s, produced, tally.verdicts, tally.dead,
                     elapsed_s > 0 ? static_cast<double>(tally.verdicts + tally.dead) / elapsed_s : 0.0);
  out += fmt::format("end-to-end latency  p50 {:.1f} ms   p99 {:.1f} ms{}\n\n", percentile(tally.latencies_ms, 0.5),
                     percentile(tally.latencies_ms, 0.99), metrics_url.empty() ? "" : "   metrics " + metrics_url);
  out += fmt::format("{:<18}", "tenant");
  for (auto a : kActions) out += fmt::format("{:>10}", a);
  out += "\n";
  for (const auto& [tenant, actions] : tally.by_tenant_action) {
    out += fmt::format("{:<18}", tenant);
    for (auto a : kActions) out += fmt::format("{:>10}", actions.count(a) ? actions.at(a) : 0);
    out += "\n";
  }
  std::vector<std::pair<uint64_t, std::string>> top;
  for (const auto& [c, n] : tally.categories) top.emplace_back(n, c);
  std::sort(top.rbegin(), top.rend());
  out += "\ntop categories: ";
  for (size_t i = 0; i < std::min<size_t>(top.size(), 8); ++i) out += fmt::format("{} {}  ", top[i].second, top[i].first);
  out += "\n";
  if (!tty && !final) out += "\n";
  return std::fputs(out.c_str(), stdout) >= 0 && std::fflush(stdout) == 0;
}

}  // namespace

int run_demo(const DemoOptions& options) {
  auto policies = load_policies_or_report(options.policy);
  if (!policies) return 2;
  DevBroker::Options bo;
  bo.partitions = 4;
  auto started = DevBroker::start(bo);
  if (auto* e = std::get_if<std::string>(&started)) {
    spdlog::error("demo: {}", *e);
    return 1;
  }
  const auto broker = std::move(std::get<std::unique_ptr<DevBroker>>(started));
  struct sigaction sa {};
  sa.sa_handler = on_demo_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  ServiceConfig config;
  config.brokers = broker->bootstrap();
  config.threads = options.threads;
  config.kafka["log_level"] = "3";
  // The mock cluster holds a fetch for its full wait time even when data arrives
  // (a real broker answers at once), so short waits keep the demo's latency honest.
  config.kafka["fetch.wait.max.ms"] = "10";
  auto metrics = std::make_shared<Metrics>(kVersion);
  metrics->set_policies(*policies);
  Service service(config, policies, metrics.get());
  metrics->watch_service(&service);
  std::unique_ptr<HttpServer> http;
  if (!options.metrics_address.empty()) {
    auto served = HttpServer::start(options.metrics_address, metrics,
                                    [&service] { return service.counters().assigned_partitions.load() > 0; });
    if (auto* e = std::get_if<std::string>(&served)) spdlog::warn("demo: {}; continuing without it", *e);
    else http = std::move(std::get<std::unique_ptr<HttpServer>>(served));
  }
  std::string service_error;
  std::thread service_thread([&] { service_error = service.run().error; });

  Tally tally;
  std::atomic<bool> stop_reader{false};
  std::thread reader([&] { read_outputs(broker->bootstrap(), bo.partitions, tally, stop_reader); });

  // The generator's producer knows the input topic's leaders before the first comment.
  rd_kafka_t* producer = make_client(RD_KAFKA_PRODUCER, broker->bootstrap(), nullptr);
  {
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(producer, "comments", nullptr);
    const rd_kafka_metadata_t* metadata = nullptr;
    if (rd_kafka_metadata(producer, 0, rkt, &metadata, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR)
      rd_kafka_metadata_destroy(metadata);
    rd_kafka_topic_destroy(rkt);
  }

  // The stream starts once the service has joined its group and holds partitions,
  // so the latency shown is the service's, not the group join's.
  const auto join_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (service.counters().assigned_partitions.load() == 0 && !g_demo_stop.load() &&
         std::chrono::steady_clock::now() < join_deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));

  // The generator, paced to --rate, until Ctrl-C or --duration.
  gen::CommentGenerator generator;
  const bool tty = ::isatty(STDOUT_FILENO);
  const std::string metrics_url =
      http ? fmt::format("http://{}/metrics", http->bound_address()) : "";
  const auto start = std::chrono::steady_clock::now();
  auto next_draw = start;
  uint64_t produced = 0;
  std::string json;
  while (!g_demo_stop.load()) {
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (options.duration_s > 0 && elapsed >= options.duration_s) break;
    // A burst lasts at most 50 ms, so a rate the producer cannot keep up with still
    // leaves room for the view, --duration and Ctrl-C.
    const auto burst_end = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
    while (static_cast<double>(produced) < elapsed * options.rate &&
           (produced % 256 != 0 || (!g_demo_stop.load() && std::chrono::steady_clock::now() < burst_end))) {
      json.clear();
      generator.next_json(json);
      if (produced % 997 == 13) json = "{\"id\":\"broken\",\"tenant\":\"windsor\",\"text\":";  // a malformed message
      // Keyed by author, as README asks of producers: an author's comments share a
      // partition, so repeat-offender rules see all of them.
      const std::string& key = generator.last_author();
      if (rd_kafka_producev(producer, RD_KAFKA_V_TOPIC("comments"), RD_KAFKA_V_VALUE(json.data(), json.size()),
                            RD_KAFKA_V_KEY(key.data(), key.size()),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY | RD_KAFKA_MSG_F_BLOCK), RD_KAFKA_V_END))
        break;  // the client is failing: its error callback logs why; the count below tells
      ++produced;
    }
    rd_kafka_poll(producer, 0);
    if (std::chrono::steady_clock::now() >= next_draw) {
      if (!draw(tally, elapsed, produced, tty, false, metrics_url)) break;
      next_draw += std::chrono::milliseconds(tty ? 500 : 2000);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  rd_kafka_flush(producer, 10000);  // then every delivery report is in (or the flush timed out)
  rd_kafka_destroy(producer);
  const uint64_t acknowledged = g_acknowledged.load();
  // Let the last records arrive while they still come (a backlog drains at the
  // service's pace), then stop everything in order.
  uint64_t answered = 0;
  auto last_progress = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - last_progress < std::chrono::seconds(5)) {
    uint64_t now_answered;
    {
      std::lock_guard lock(tally.mu);
      now_answered = tally.verdicts + tally.dead;
    }
    if (now_answered >= acknowledged) {
      last_progress = std::chrono::steady_clock::now();
      break;
    }
    if (now_answered > answered) {
      answered = now_answered;
      last_progress = std::chrono::steady_clock::now();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  service.stop();
  service_thread.join();
  http.reset();
  metrics->watch_service(nullptr);
  stop_reader.store(true);
  reader.join();
  // Up to the last record that came, not the shutdown after it.
  const double elapsed = std::chrono::duration<double>(last_progress - start).count();
  std::fputs("\nsummary\n", stdout);
  const bool drawn = draw(tally, elapsed, produced, tty, true, metrics_url);
  if (!service_error.empty()) {
    spdlog::error("{}", service_error);
    return 1;
  }
  if (!drawn) {
    spdlog::error("cannot write the demo's view: {}", std::strerror(errno));
    return 1;
  }
  // Every comment the broker took must have come back as a verdict or a dead letter.
  const uint64_t records = tally.verdicts + tally.dead;
  if (acknowledged < produced || records < acknowledged) {
    spdlog::error(
        "demo: {} comments produced, {} acknowledged by the broker, {} answered: {} without a record{}", produced,
        acknowledged, records, produced - std::min(produced, records),
        records < acknowledged ? " (the development broker keeps about 5 MB per partition and drops older "
                                 "messages: a backlog that large was lost before it was read; lower --rate)"
                               : "");
    return 1;
  }
  return 0;
}

}  // namespace civicsift
