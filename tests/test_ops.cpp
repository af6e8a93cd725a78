// ops: metrics exposition, the health endpoints, policy reload, logs and the run
// configuration.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <simdjson.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <sstream>
#include <thread>

#include "app/run_config.h"
#include "classify/classifier.h"
#include "ops/http_server.h"
#include "ops/logging.h"
#include "ops/metrics.h"
#include "ops/reloader.h"
#include "test_util.h"

using namespace civicsift;
using civicsift::testing::TempDir;
namespace fs = std::filesystem;

namespace {

// One HTTP/1.0 GET against 127.0.0.1:port; the whole response.
// A connection to 127.0.0.1:port, or -1.
int connect_local(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

std::string http_request(int port, const std::string& path, const std::string& method = "GET") {
  const int fd = connect_local(port);
  if (fd < 0) return "";
  const std::string request = method + " " + path + " HTTP/1.0\r\nHost: localhost\r\n\r\n";
  (void)!write(fd, request.data(), request.size());
  std::string response;
  char buf[4096];
  for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) response.append(buf, static_cast<size_t>(n));
  close(fd);
  return response;
}

void copy_test_policy(const TempDir& dir) {
  const fs::path src = CIVICSIFT_SOURCE_DIR "/tests/data/policy";
  fs::copy(src, dir.path(), fs::copy_options::recursive | fs::copy_options::overwrite_existing);
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

const char* kZorblaxRule = R"(
  - id: town.zorblax
    category: spam
    clause: "Town 7"
    action: remove
    terms: [zorblax]
    examples: {match: ["buy zorblax now"], no_match: ["a quiet park"]}
)";

std::shared_ptr<const PolicySet> load_or_fail(const fs::path& dir) {
  auto r = load_policy_set(dir, {});
  if (auto* e = std::get_if<PolicyError>(&r)) ADD_FAILURE() << e->to_string();
  return std::get<std::shared_ptr<const PolicySet>>(r);
}

}  // namespace

TEST(Metrics, ExposesEveryFamilyWithBoundedLabelsAndNoCommentData) {
  TempDir dir;
  copy_test_policy(dir);
  auto policies = load_or_fail(dir.path());
  Metrics metrics("9.9.9");
  metrics.set_policies(*policies);

  Comment comment;
  comment.id = "c1";
  comment.tenant = "town";
  comment.author = "Jane Q. Citizen";
  comment.text = "call me at 519-555-0147 or jane@example.com, you f*cking idiot";
  ScanContext scan;
  Verdict verdict;
  classify(*policies->find("town"), comment, scan, verdict);
  ASSERT_NE(verdict.action, Action::allow);
  metrics.on_verdict(comment, verdict, 3e-6);
  metrics.on_verdict(comment, verdict, 4e-6);
  metrics.on_invalid(DecodeErrorCode::not_json);
  metrics.on_verdict_acknowledged(0.012);
  metrics.on_produce_error();
  metrics.on_record_replaced();
  metrics.on_undeliverable();
  metrics.on_transaction_aborted();
  metrics.on_consumer_lag("comments", 2, 17);
  metrics.on_consumer_lag("comments", 3, -1);  // unknown lag is not reported
  metrics.record_reload("town", Metrics::Reload::failure);

  const std::string text = metrics.exposition();
  for (const char* family :
       {"civicsift_comments_total", "civicsift_category_matches_total", "civicsift_invalid_input_total",
        "civicsift_dead_letter_total", "civicsift_messages_consumed_total", "civicsift_scan_duration_seconds",
        "civicsift_end_to_end_latency_seconds", "civicsift_consumer_lag_messages", "civicsift_assigned_partitions",
        "civicsift_paused_partitions",
        "civicsift_inflight_messages", "civicsift_produce_errors_total", "civicsift_replaced_records_total",
        "civicsift_undeliverable_total", "civicsift_aborted_transactions_total", "civicsift_policy_info",
        "civicsift_policy_reloads_total", "civicsift_build_info"})
    EXPECT_NE(text.find(std::string("# TYPE ") + family + " "), std::string::npos) << family;
  const std::string action(to_string(verdict.action));
  EXPECT_NE(text.find("civicsift_comments_total{action=\"" + action + "\",tenant=\"town\"} 2"), std::string::npos)
      << text;
  EXPECT_NE(text.find("civicsift_invalid_input_total{reason=\"not_json\"} 1"), std::string::npos);
  EXPECT_NE(text.find("civicsift_dead_letter_total 1"), std::string::npos);
  EXPECT_NE(text.find("civicsift_replaced_records_total 1"), std::string::npos);
  EXPECT_NE(text.find("civicsift_undeliverable_total 1"), std::string::npos);
  EXPECT_NE(text.find("civicsift_aborted_transactions_total 1"), std::string::npos);
  EXPECT_NE(text.find("civicsift_scan_duration_seconds_count 2"), std::string::npos);
  EXPECT_NE(text.find("civicsift_end_to_end_latency_seconds_bucket{le=\"0.025\"} 1"), std::string::npos);
  EXPECT_NE(text.find("civicsift_consumer_lag_messages{partition=\"2\",topic=\"comments\"} 17"), std::string::npos);
  EXPECT_EQ(text.find("partition=\"3\""), std::string::npos);
  EXPECT_NE(text.find("civicsift_policy_info{tenant=\"town\",version=\"" + policies->find("town")->spec().version +
                      "\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("civicsift_policy_reloads_total{result=\"failure\",tenant=\"town\"} 1"), std::string::npos);
  EXPECT_NE(text.find("civicsift_build_info{version=\"9.9.9\"} 1"), std::string::npos);
  for (const char* secret : {"Jane", "519", "555-0147", "example.com", "idiot", "c1\""})
    EXPECT_EQ(text.find(secret), std::string::npos) << secret;

  // A revoke forgets the lag of partitions no longer ours.
  metrics.on_partitions_revoked();
  EXPECT_EQ(metrics.exposition().find("civicsift_consumer_lag_messages{"), std::string::npos);
}

TEST(Metrics, CountsFromManyThreadsAddUpOnceAcrossScrapes) {
  Metrics metrics("test");
  Comment comment;
  comment.tenant = "town";
  Verdict verdict;
  verdict.action = Action::remove;
  verdict.categories = (1u << static_cast<unsigned>(Category::profanity)) | (1u << static_cast<unsigned>(Category::pii));
  Comment other = comment;
  other.tenant = "village";
  Verdict allowed;
  constexpr int kThreads = 4, kEach = 2500;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) {
        metrics.on_verdict(comment, verdict, 1e-6);  // on a bound: counted in its bucket
        metrics.on_verdict(other, allowed, 3e-3);
        metrics.on_verdict_acknowledged(0.5);
        if (i == kEach / 2) (void)metrics.exposition();  // scrapes while the threads count
      }
    });
  for (auto& t : threads) t.join();
  const std::string first = metrics.exposition();
  const std::string second = metrics.exposition();
  EXPECT_EQ(first, second);  // a scrape moves what is new, never the same counts twice
  const std::string n = std::to_string(kThreads * kEach), both = std::to_string(2 * kThreads * kEach);
  for (const std::string& line :
       {"civicsift_comments_total{action=\"remove\",tenant=\"town\"} " + n,
        "civicsift_comments_total{action=\"allow\",tenant=\"village\"} " + n,
        "civicsift_category_matches_total{category=\"profanity\",tenant=\"town\"} " + n,
        "civicsift_category_matches_total{category=\"pii\",tenant=\"town\"} " + n,
        "civicsift_scan_duration_seconds_count " + both,
        "civicsift_scan_duration_seconds_bucket{le=\"1e-06\"} " + n,
        "civicsift_scan_duration_seconds_bucket{le=\"0.0025\"} " + n,
        "civicsift_scan_duration_seconds_bucket{le=\"0.01\"} " + both,
        "civicsift_end_to_end_latency_seconds_count " + n,
        std::string("civicsift_end_to_end_latency_seconds_bucket{le=\"0.25\"} 0"),
        "civicsift_end_to_end_latency_seconds_bucket{le=\"0.5\"} " + n})
    EXPECT_NE(first.find(line + "\n"), std::string::npos) << line << "\n" << first;
  EXPECT_NE(first.find("civicsift_end_to_end_latency_seconds_sum " + std::to_string(kThreads * kEach / 2) + "\n"),
            std::string::npos);
}

TEST(HttpServer, ServesMetricsLivenessAndReadiness) {
  auto metrics = std::make_shared<Metrics>("1.2.3");
  std::atomic<bool> ready{false};
  auto started = HttpServer::start("127.0.0.1:0", metrics, [&] { return ready.load(); });
  ASSERT_TRUE(std::holds_alternative<std::unique_ptr<HttpServer>>(started)) << std::get<std::string>(started);
  const auto& server = std::get<std::unique_ptr<HttpServer>>(started);
  ASSERT_GT(server->port(), 0);
  EXPECT_EQ(server->bound_address(), "127.0.0.1:" + std::to_string(server->port()));

  EXPECT_EQ(http_request(server->port(), "/healthz").rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_EQ(http_request(server->port(), "/readyz").rfind("HTTP/1.1 503", 0), 0u);
  ready.store(true);
  EXPECT_EQ(http_request(server->port(), "/readyz").rfind("HTTP/1.1 200", 0), 0u);
  const std::string scrape = http_request(server->port(), "/metrics");
  EXPECT_EQ(scrape.rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_NE(scrape.find("civicsift_build_info{version=\"1.2.3\"} 1"), std::string::npos);

  // HEAD gets the headers only, /metrics included; other methods are not allowed.
  const std::string head = http_request(server->port(), "/healthz", "HEAD");
  EXPECT_EQ(head.rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_EQ(head.substr(head.size() - 4), "\r\n\r\n") << head;
  const std::string head_metrics = http_request(server->port(), "/metrics", "HEAD");
  EXPECT_EQ(head_metrics.rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_EQ(head_metrics.find("civicsift_build_info"), std::string::npos);
  const auto content_type = [](const std::string& reply) {
    const size_t at = reply.find("Content-Type: ");
    return at == std::string::npos ? std::string() : reply.substr(at, reply.find("\r\n", at) - at);
  };
  EXPECT_EQ(content_type(head_metrics), content_type(scrape));
  EXPECT_EQ(content_type(scrape), "Content-Type: text/plain; charset=utf-8");
  const std::string post = http_request(server->port(), "/readyz", "POST");
  EXPECT_EQ(post.rfind("HTTP/1.1 405", 0), 0u);
  EXPECT_NE(post.find("Allow: GET, HEAD"), std::string::npos);

  // A port already taken is an error value, not an exception.
  auto clash = HttpServer::start("127.0.0.1:" + std::to_string(server->port()), metrics, [] { return true; });
  ASSERT_TRUE(std::holds_alternative<std::string>(clash));
  EXPECT_NE(std::get<std::string>(clash).find("metrics endpoint"), std::string::npos);

  // Stopping does not sit out civetweb's 2 s poll of its listening sockets, on any
  // host form: a wildcard is knocked on through this machine's loopback.
  const auto stops_promptly = [](std::unique_ptr<HttpServer>& s) {
    const auto stop_at = std::chrono::steady_clock::now();
    s.reset();
    return std::chrono::steady_clock::now() - stop_at < std::chrono::seconds(1);
  };
  for (const char* address : {"0.0.0.0:0", "[::]:0"}) {
    auto other = HttpServer::start(address, metrics, [] { return true; });
    if (auto* e = std::get_if<std::string>(&other)) {
      EXPECT_EQ(std::string(address), "[::]:0") << *e;  // a machine without IPv6 may refuse that one
      continue;
    }
    EXPECT_TRUE(stops_promptly(std::get<std::unique_ptr<HttpServer>>(other))) << address;
  }
  EXPECT_TRUE(stops_promptly(std::get<std::unique_ptr<HttpServer>>(started)));
}

// Connections left open without a request (a port scan, a stuck client) each hold a
// server thread until the request timeout; the probes must not queue behind them.
// Answered behind them, a probe would come only after the server had dropped some of
// them; so each must still be open when the probe's answer is in. A retry absorbs a
// stall of the test machine longer than the timeout.
TEST(HttpServer, ProbesAreAnsweredWhileManyConnectionsSitIdle) {
  auto metrics = std::make_shared<Metrics>("1.2.3");
  auto started = HttpServer::start("127.0.0.1:0", metrics, [] { return true; });
  ASSERT_TRUE(std::holds_alternative<std::unique_ptr<HttpServer>>(started)) << std::get<std::string>(started);
  const int port = std::get<std::unique_ptr<HttpServer>>(started)->port();
  constexpr int kIdle = 20;
  bool answered_ahead = false;
  for (int attempt = 0; attempt < 3 && !answered_ahead; ++attempt) {
    std::vector<int> idle;
    for (int i = 0; i < kIdle; ++i) idle.push_back(connect_local(port));
    const std::string probe = http_request(port, "/readyz");
    EXPECT_EQ(probe.rfind("HTTP/1.1 200", 0), 0u);
    answered_ahead = std::all_of(idle.begin(), idle.end(), [](int fd) {
      char byte;
      return fd >= 0 && recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) < 0 && errno == EAGAIN;  // open, nothing sent
    });
    for (int fd : idle) close(fd);
  }
  EXPECT_TRUE(answered_ahead);
}

TEST(PolicyReload, UnchangedFoldersKeepTheirDatabasesAndEditsSwapOneTenant) {
  TempDir dir;
  copy_test_policy(dir);
  auto current = load_or_fail(dir.path());
  const std::string before = current->find("town")->spec().version;

  ReloadResult same = rebuild_policies(dir.path(), {}, current);
  EXPECT_FALSE(same.changed);
  EXPECT_EQ(same.policies, current);
  ASSERT_EQ(same.tenants.size(), 1u);
  EXPECT_TRUE(same.tenants[0].ok);
  EXPECT_FALSE(same.tenants[0].updated);

  std::ofstream(dir.path() / "town.yaml", std::ios::app) << kZorblaxRule;
  ReloadResult edited = rebuild_policies(dir.path(), {}, current);
  ASSERT_TRUE(edited.changed);
  EXPECT_TRUE(edited.tenants[0].updated);
  const CompiledPolicy* town = edited.policies->find("town");
  ASSERT_NE(town, nullptr);
  EXPECT_NE(town->spec().version, before);
  Verdict v;
  civicsift::testing::fired(*town, "buy zorblax now", Direction::inbound, &v);
  EXPECT_EQ(v.action, Action::remove);
}

// The tenants of the new set share their databases again after a reload compiled one
// of them (a cache is not needed for it), and each still reads only its own patterns.
TEST(PolicyReload, TheTenantsShareTheirDatabasesAgainAfterAnEdit) {
  TempDir dir;
  copy_test_policy(dir);
  dir.write("city.yaml", "tenant: city\nrules:\n  - {id: city.spam, category: spam, clause: '2', action: review, "
                         "terms: [bother]}\n");
  auto current = load_or_fail(dir.path());
  ASSERT_NE(current->find("town")->shared(), nullptr);
  EXPECT_EQ(current->find("town")->shared(), current->find("city")->shared());

  std::ofstream(dir.path() / "town.yaml", std::ios::app) << kZorblaxRule;
  ReloadResult edited = rebuild_policies(dir.path(), {}, current);
  ASSERT_TRUE(edited.changed);
  const CompiledPolicy* town = edited.policies->find("town");
  const CompiledPolicy* city = edited.policies->find("city");
  ASSERT_TRUE(town && city);
  ASSERT_NE(town->shared(), nullptr);
  EXPECT_EQ(town->shared(), city->shared());
  EXPECT_NE(town->shared(), current->find("town")->shared());
  EXPECT_EQ(city->spec().version, current->find("city")->spec().version);
  using civicsift::testing::fired;
  EXPECT_EQ(fired(*town, "buy zorblax now, bother"), std::vector<std::string>{"town.zorblax"});
  EXPECT_EQ(fired(*city, "buy zorblax now, bother"), std::vector<std::string>{"city.spam"});
}

// A reload skips the files whose bytes have not changed; a lexicon is part of them.
TEST(PolicyReload, AnEditedLexiconAloneSwapsItsTenant) {
  TempDir dir;
  copy_test_policy(dir);
  auto current = load_or_fail(dir.path());
  EXPECT_TRUE(civicsift::testing::fired(*current->find("town"), "what a glorp").empty());

  std::string lexicon = read_file(dir.path() / "lexicons" / "swears.yaml");
  lexicon.replace(lexicon.find("hell]"), 5, "hell, glorp]");
  dir.write("lexicons/swears.yaml", lexicon);
  ReloadResult r = rebuild_policies(dir.path(), {}, current);
  ASSERT_TRUE(r.changed);
  ASSERT_EQ(r.tenants.size(), 1u);
  EXPECT_TRUE(r.tenants[0].updated);
  EXPECT_NE(r.tenants[0].version, current->find("town")->spec().version);
  EXPECT_FALSE(civicsift::testing::fired(*r.policies->find("town"), "what a glorp").empty());

  // Reloaded again untouched: the new policy stays, not recompiled.
  ReloadResult again = rebuild_policies(dir.path(), {}, r.policies);
  EXPECT_FALSE(again.changed);
  EXPECT_EQ(again.policies, r.policies);
}

TEST(PolicyReload, ABrokenPolicyKeepsThePreviousOneAndNamesFileAndRule) {
  TempDir dir;
  copy_test_policy(dir);
  auto current = load_or_fail(dir.path());
  const std::string good = read_file(dir.path() / "town.yaml");

  // A regex Hyperscan rejects: the error names the file and the rule.
  std::ofstream(dir.path() / "town.yaml", std::ios::app)
      << "  - id: town.broken\n    category: spam\n    clause: x\n    action: remove\n    regex: ['(?<=a)b']\n";
  ReloadResult r = rebuild_policies(dir.path(), {}, current);
  EXPECT_FALSE(r.changed);
  EXPECT_EQ(r.policies->find("town"), current->find("town"));
  ASSERT_EQ(r.tenants.size(), 1u);
  EXPECT_FALSE(r.tenants[0].ok);
  EXPECT_NE(r.tenants[0].error.find("town.yaml"), std::string::npos) << r.tenants[0].error;
  EXPECT_NE(r.tenants[0].error.find("town.broken"), std::string::npos) << r.tenants[0].error;
  EXPECT_EQ(r.tenants[0].version, current->find("town")->spec().version);

  // The tenant renamed in the same edit that broke it: the file's policy stays in force.
  std::string renamed = read_file(dir.path() / "town.yaml");
  renamed.replace(renamed.find("tenant: town"), 12, "tenant: city");
  dir.write("town.yaml", renamed);
  ReloadResult renamed_broken = rebuild_policies(dir.path(), {}, current);
  EXPECT_FALSE(renamed_broken.changed);
  EXPECT_EQ(renamed_broken.policies->find("town"), current->find("town"));

  // Not YAML at all, a missing lexicon, an emptied folder: still the old policy.
  dir.write("town.yaml", "tenant: [unclosed\n");
  EXPECT_EQ(rebuild_policies(dir.path(), {}, current).policies->find("town"), current->find("town"));
  dir.write("town.yaml", good);
  fs::remove(dir.path() / "lexicons" / "swears.yaml");
  ReloadResult missing = rebuild_policies(dir.path(), {}, current);
  EXPECT_FALSE(missing.tenants[0].ok);
  EXPECT_NE(missing.tenants[0].error.find("swears"), std::string::npos) << missing.tenants[0].error;
  fs::remove(dir.path() / "town.yaml");
  ReloadResult emptied = rebuild_policies(dir.path(), {}, current);
  EXPECT_EQ(emptied.policies, current);
  EXPECT_FALSE(emptied.tenants.at(0).ok);
}

TEST(PolicyReload, TheWatcherSwapsAfterAnEditAndCountsTheResult) {
  TempDir dir;
  copy_test_policy(dir);
  auto current = load_or_fail(dir.path());
  Metrics metrics("test");
  std::mutex mu;
  std::shared_ptr<const PolicySet> applied;
  const uint64_t loaded_digest = policy_folder_digest(dir.path());
  PolicyReloader reloader(
      dir.path(), {}, current,
      [&](std::shared_ptr<const PolicySet> next) {
        std::lock_guard lock(mu);
        applied = std::move(next);
      },
      &metrics, 100, loaded_digest);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // a look or two finds nothing new
  {
    std::lock_guard lock(mu);
    EXPECT_FALSE(applied);
  }
  std::ofstream(dir.path() / "town.yaml", std::ios::app) << kZorblaxRule;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (;;) {
    {
      std::lock_guard lock(mu);
      if (applied || std::chrono::steady_clock::now() > deadline) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::lock_guard lock(mu);
  ASSERT_TRUE(applied);
  EXPECT_NE(applied->find("town")->spec().version, current->find("town")->spec().version);
  // The metrics follow the swap: the watcher's thread updates them just after.
  const std::string version = "version=\"" + applied->find("town")->spec().version + "\"";
  std::string text = metrics.exposition();
  while (text.find(version) == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    text = metrics.exposition();
  }
  EXPECT_NE(text.find("civicsift_policy_reloads_total{result=\"success\",tenant=\"town\"} 1"), std::string::npos);
  EXPECT_NE(text.find(version), std::string::npos);
}

// A watcher looking at `dir` every 100 ms, which notes when it puts a new set in force.
struct WatchedFolder {
  WatchedFolder(const fs::path& dir, std::shared_ptr<const PolicySet> current, uint64_t loaded_digest)
      : reloader(dir, {}, std::move(current), [this](std::shared_ptr<const PolicySet>) { applied.store(true); },
                 nullptr, 100, loaded_digest) {}
  bool swapped_within(std::chrono::seconds budget) const {
    const auto deadline = std::chrono::steady_clock::now() + budget;
    while (!applied.load() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return applied.load();
  }
  std::atomic<bool> applied{false};
  PolicyReloader reloader;
};

// The service compiles its policies cold before the watcher starts (seconds): an
// edit made meanwhile differs from what was loaded and is picked up at the first look.
TEST(PolicyReload, AnEditMadeWhileThePoliciesCompiledIsPickedUp) {
  TempDir dir;
  copy_test_policy(dir);
  const uint64_t loaded_digest = policy_folder_digest(dir.path());
  auto current = load_or_fail(dir.path());
  std::ofstream(dir.path() / "town.yaml", std::ios::app) << kZorblaxRule;  // while it compiled
  WatchedFolder watched(dir.path(), current, loaded_digest);
  EXPECT_TRUE(watched.swapped_within(std::chrono::seconds(10)));
}

// A .yaml entry that cannot be examined (a symlink loop) is no tenant file: the watcher
// goes on looking, and an edit made after it appeared is still put in force.
TEST(PolicyReload, ALinkThatLeadsNowhereNeitherStopsTheWatcherNorHidesAnEdit) {
  TempDir dir;
  copy_test_policy(dir);
  auto current = load_or_fail(dir.path());
  const uint64_t loaded_digest = policy_folder_digest(dir.path());
  fs::create_symlink("loop.yaml", dir.path() / "loop.yaml");
  fs::create_symlink("loop.yaml", dir.path() / "lexicons" / "loop.yaml");
  EXPECT_EQ(policy_folder_digest(dir.path()), loaded_digest);
  EXPECT_EQ(rebuild_policies(dir.path(), {}, current).policies, current);
  WatchedFolder watched(dir.path(), current, loaded_digest);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // looks at the folder with the loops
  std::ofstream(dir.path() / "town.yaml", std::ios::app) << kZorblaxRule;
  EXPECT_TRUE(watched.swapped_within(std::chrono::seconds(30)));
}

// A reload asked for (SIGHUP) with nothing edited counts as unchanged, not as a success:
// dashboards see which reloads put a new version in force.
TEST(PolicyReload, ARequestReloadsWithoutAWatchAndCountsAnUnchangedTenant) {
  TempDir dir;
  copy_test_policy(dir);
  auto current = load_or_fail(dir.path());
  Metrics metrics("test");
  metrics.set_policies(*current);
  PolicyReloader reloader(dir.path(), {}, current, [](std::shared_ptr<const PolicySet>) {}, &metrics, 0, 0);
  reloader.request();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (reloader.reloads() == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(reloader.reloads(), 1u);
  const std::string text = metrics.exposition();
  EXPECT_NE(text.find("civicsift_policy_reloads_total{result=\"unchanged\",tenant=\"town\"} 1"), std::string::npos)
      << text;
  EXPECT_NE(text.find("civicsift_policy_reloads_total{result=\"success\",tenant=\"town\"} 0"), std::string::npos);
}

TEST(Logging, JsonLinesEscapeWhatTheyCarry) {
  std::ostringstream lines;
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(
      std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::ostream_sink_mt>(lines)));
  configure_logging({LogFormat::json, "info"});
  spdlog::info("policy error: {}", "file \"a.yaml\"\\ line\n\t\x01");
  spdlog::debug("below the level");
  spdlog::set_default_logger(previous);
  configure_logging({});
  const std::string line = lines.str();
  ASSERT_EQ(std::count(line.begin(), line.end(), '\n'), 1) << line;
  simdjson::dom::parser parser;
  simdjson::dom::element e;
  ASSERT_EQ(parser.parse(line).get(e), simdjson::SUCCESS) << line;
  EXPECT_EQ(std::string_view(e["msg"]), "policy error: file \"a.yaml\"\\ line\n\t\x01");
  EXPECT_EQ(std::string_view(e["level"]), "info");
  EXPECT_EQ(parse_log_format("json"), LogFormat::json);
  EXPECT_FALSE(parse_log_format("xml"));
  EXPECT_TRUE(is_log_level("debug"));
  EXPECT_TRUE(is_log_level("off"));
  EXPECT_FALSE(is_log_level("loud"));
}

TEST(RunConfig, ErrorsNameTheKey) {
  TempDir dir;
  auto load = [&](const std::string& yaml) {
    dir.write("c.yaml", yaml);
    auto r = load_run_config(dir.path() / "c.yaml", {});
    return std::holds_alternative<std::string>(r) ? std::get<std::string>(r) : std::string();
  };
  EXPECT_NE(load("brokers: a:1\ngroupp: x\n").find("unknown key \"groupp\""), std::string::npos);
  EXPECT_NE(load("threads: many\n").find("key \"threads\""), std::string::npos);
  EXPECT_NE(load("delivery: twice\n").find("key \"delivery\""), std::string::npos);
  EXPECT_NE(load("log_format: xml\n").find("key \"log_format\""), std::string::npos);
  EXPECT_NE(load("log_level: loud\n").find("key \"log_level\""), std::string::npos);
  EXPECT_NE(load("watch_patterns: sometimes\n").find("key \"watch_patterns\""), std::string::npos);
  EXPECT_EQ(load("brokers: a:1\nkafka:\n  security.protocol: SSL\n"), "");
  EXPECT_NE(load("threads: 2\nthreads: 4\n").find("key \"threads\" is given twice"), std::string::npos);
  EXPECT_NE(load("kafka:\n  acks: all\n  acks: 1\n").find("kafka.acks is given twice"), std::string::npos);
  // Numbers out of range fail at start, the range named: none is left to mean
  // something odd later (no queue at all stalls the service; watching every 0 ms or
  // waiting -1 ms are not settings).
  EXPECT_NE(load("max_queued: 0\n").find("key \"max_queued\" must be between 1 and"), std::string::npos);
  EXPECT_NE(load("watch_interval_ms: 0\n").find("key \"watch_interval_ms\" must be between"), std::string::npos);
  EXPECT_NE(load("shutdown_timeout_ms: -1\n").find("key \"shutdown_timeout_ms\""), std::string::npos);
  EXPECT_NE(load("transaction_interval_ms: 0\n").find("key \"transaction_interval_ms\""), std::string::npos);
  EXPECT_NE(load("statistics_interval_ms: -5\n").find("key \"statistics_interval_ms\""), std::string::npos);
  EXPECT_NE(load("threads: 5000\n").find("key \"threads\" must be between 0 and 256"), std::string::npos);
  EXPECT_NE(load("max_bytes: 0\n").find("key \"max_bytes\""), std::string::npos);
  EXPECT_NE(load("max_queued: 1.5\n").find("key \"max_queued\" has a value of the wrong type"), std::string::npos);
  EXPECT_EQ(load("max_queued: 1\nshutdown_timeout_ms: 0\nthreads: 0\n"), "");
  // An empty value is not yaml-cpp's text "null" (a topic, a folder or a password of
  // that name): it fails, naming the key; "" is the way to say none.
  for (const char* key : {"copy_topic", "patterns", "metrics_address", "brokers", "delivery", "threads"})
    EXPECT_NE(load(std::string(key) + ":\n").find(fmt::format("key \"{}\" has no value", key)), std::string::npos)
        << key;
  EXPECT_NE(load("kafka:\n  sasl.password:\n").find("key \"kafka.sasl.password\" has no value"), std::string::npos);
  EXPECT_EQ(load("copy_topic: \"\"\n"), "");
  // What civicsift sets itself cannot be given under kafka:, where it would be
  // overridden without a word (--brokers and --group would not win over it either).
  EXPECT_NE(load("kafka:\n  group.id: teamA\n").find("kafka.group.id is set by civicsift: use the key \"group\""),
            std::string::npos);
  EXPECT_NE(load("kafka:\n  bootstrap.servers: a:1\n").find("use the key \"brokers\""), std::string::npos);
  EXPECT_NE(load("kafka:\n  metadata.broker.list: a:1\n").find("use the key \"brokers\""), std::string::npos);
  EXPECT_NE(load("kafka:\n  transactional.id: t\n").find("use the key \"transactional_id\""), std::string::npos);
  EXPECT_NE(load("kafka:\n  enable.auto.offset.store: \"true\"\n").find("kafka.enable.auto.offset.store is set"),
            std::string::npos);
  EXPECT_NE(load("kafka:\n  isolation.level: read_uncommitted\ndelivery: exactly_once\n").find("with delivery exactly_once"),
            std::string::npos);
  EXPECT_EQ(load("kafka:\n  isolation.level: read_uncommitted\n"), "");
  // Transactions need a budget to start and to commit in.
  EXPECT_NE(load("delivery: exactly_once\nshutdown_timeout_ms: 0\n").find("shutdown_timeout_ms must be at least 1000"),
            std::string::npos);
  EXPECT_EQ(load("delivery: exactly_once\nshutdown_timeout_ms: 1000\n"), "");
  // Every key is optional, so a file of comments only is an empty configuration.
  EXPECT_EQ(load("# nothing set yet\n"), "");
  // A key that is not plain text, and a folder given as the file: errors, not a crash.
  EXPECT_NE(load("[1, 2]: x\n").find("line 1: a key must be plain text"), std::string::npos);
  EXPECT_NE(load("{a: 1}: x\n").find("a key must be plain text"), std::string::npos);
  const auto as_folder = load_run_config(dir.path(), {});
  ASSERT_TRUE(std::holds_alternative<std::string>(as_folder));
  EXPECT_NE(std::get<std::string>(as_folder).find("is a directory"), std::string::npos);

  dir.write("c.yaml", "metrics_address: 127.0.0.1:9000\nwatch_patterns: true\nlog_format: json\ngroup: g\n");
  auto r = load_run_config(dir.path() / "c.yaml", {});
  ASSERT_TRUE(std::holds_alternative<RunConfig>(r));
  const auto& c = std::get<RunConfig>(r);
  EXPECT_EQ(c.metrics_address, "127.0.0.1:9000");
  EXPECT_TRUE(c.watch_patterns);
  EXPECT_EQ(c.log_format, LogFormat::json);
  EXPECT_EQ(c.service.group, "g");
  EXPECT_EQ(c.service.input_topic, "comments");

  // The shipped example configuration loads as it is.
  EXPECT_TRUE(std::holds_alternative<RunConfig>(load_run_config(CIVICSIFT_SOURCE_DIR "/deploy/civicsift.yaml", {})));
}
