// civicsift run: the Kafka service with its metrics endpoint and policy reloads;
// civicsift dev-broker: a local broker.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <thread>

#include "app/commands.h"
#include "app/version.h"
#include "ops/http_server.h"
#include "ops/metrics.h"
#include "ops/reloader.h"
#include "transport/dev_broker.h"
#include "transport/service.h"

namespace civicsift {
namespace {

std::atomic<bool> g_stop{false};
std::atomic<Service*> g_service{nullptr};
std::atomic<PolicyReloader*> g_reloader{nullptr};
std::atomic<bool> g_reload_pending{false};  // a SIGHUP before the reloader existed

extern "C" void on_stop_signal(int) {
  g_stop.store(true);
  if (Service* s = g_service.load()) s->stop();
}

// A SIGHUP during start-up (an edit made while the policies compiled) is kept for the
// reloader; the second look covers a reloader registered while the flag was being set.
extern "C" void on_reload_signal(int) {
  g_reload_pending.store(true);
  if (PolicyReloader* r = g_reloader.load(); r && g_reload_pending.exchange(false)) r->request();
}

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  struct sigaction hup {};
  hup.sa_handler = on_reload_signal;
  sigemptyset(&hup.sa_mask);
  sigaction(SIGHUP, &hup, nullptr);
}

// The file first, then the flags given on the command line.
std::variant<RunConfig, std::string> resolve_config(const RunOptions& options) {
  RunConfig config = options.defaults;
  if (!options.config_file.empty()) {
    auto loaded = load_run_config(options.config_file, config);
    if (auto* e = std::get_if<std::string>(&loaded)) return *e;
    config = std::get<RunConfig>(std::move(loaded));
  }
  for (const auto& [key, value] : options.overrides) {
    if (key == "brokers") config.service.brokers = value;
    else if (key == "group") config.service.group = value;
    else if (key == "threads") config.service.threads = static_cast<unsigned>(std::stoul(value));
    else if (key == "patterns") config.service.patterns = value;
    else if (key == "metrics_address") config.metrics_address = value;
    else if (key == "watch_patterns") config.watch_patterns = value == "true";
    else if (key == "metrics_port") {
      // --metrics-port keeps the configured host: 127.0.0.1 stays local.
      const auto colon = config.metrics_address.rfind(':');
      const std::string host = colon == std::string::npos ? "0.0.0.0" : config.metrics_address.substr(0, colon);
      config.metrics_address = host + ":" + value;
    }
  }
  LogOptions log = options.log;
  if (!options.log_format_given && config.log_format) log.format = *config.log_format;
  if (!options.log_level_given && !config.log_level.empty()) log.level = config.log_level;
  configure_logging(log);
  return config;
}

}  // namespace

int run_service(const RunOptions& options) {
  auto resolved = resolve_config(options);
  if (auto* e = std::get_if<std::string>(&resolved)) {
    spdlog::error("configuration: {}", *e);
    return 2;
  }
  const RunConfig config = std::get<RunConfig>(std::move(resolved));
  if (const std::string e = Service::check_kafka_settings(config.service); !e.empty()) {
    spdlog::error("configuration: {}", e);
    return 2;
  }
  // Before the (possibly seconds long) cold compile: a SIGHUP then would otherwise
  // kill the process, and a SIGTERM is answered once the service exists.
  install_signal_handlers();
  PolicyOptions policy{config.service.patterns, config.service.cache_dir};
  const uint64_t loaded_digest = config.watch_patterns ? policy_folder_digest(config.service.patterns) : 0;
  auto policies = load_policies_or_report(policy);
  if (!policies) return 2;

  auto metrics = std::make_shared<Metrics>(kVersion);
  metrics->set_policies(*policies);
  Service service(config.service, policies, metrics.get());
  metrics->watch_service(&service);

  std::unique_ptr<HttpServer> http;
  if (!config.metrics_address.empty()) {
    auto started = HttpServer::start(config.metrics_address, metrics, [&service] {
      return service.counters().assigned_partitions.load() > 0;  // policies are loaded before the service starts
    });
    if (auto* e = std::get_if<std::string>(&started)) {
      spdlog::error("{}", *e);
      return 2;
    }
    http = std::move(std::get<std::unique_ptr<HttpServer>>(started));
    spdlog::info("metrics on {} (/metrics, /healthz, /readyz)", http->bound_address());
  }

  PolicyReloader reloader(
      config.service.patterns, CompileOptions{config.service.cache_dir}, policies,
      [&service](std::shared_ptr<const PolicySet> next) { service.set_policies(std::move(next)); }, metrics.get(),
      config.watch_patterns ? config.watch_interval_ms : 0, loaded_digest);
  g_service.store(&service);
  g_reloader.store(&reloader);
  if (g_reload_pending.exchange(false)) reloader.request();  // asked to reload while starting
  if (g_stop.load()) service.stop();  // asked to stop while starting
  const ServiceOutcome outcome = service.run();
  g_reloader.store(nullptr);
  g_service.store(nullptr);
  metrics->watch_service(nullptr);

  const auto& c = service.counters();
  spdlog::info("stopped: {} consumed, {} verdicts, {} dead letters, {} acknowledged", c.consumed.load(),
               c.verdicts.load(), c.dead_letters.load(), c.acknowledged.load());
  if (!outcome.error.empty()) {
    spdlog::error("{}{}", outcome.settings_refused ? "configuration: " : "", outcome.error);
    return outcome.settings_refused ? 2 : 1;  // 2: bad settings, which a restart does not cure
  }
  return 0;
}

int run_dev_broker(const DevBrokerOptions& options) {
  DevBroker::Options o;
  o.port = options.port;
  o.partitions = options.partitions;
  auto started = DevBroker::start(o);
  if (auto* e = std::get_if<std::string>(&started)) {
    spdlog::error("dev-broker: {}", *e);
    return 1;
  }
  const auto& broker = std::get<std::unique_ptr<DevBroker>>(started);
  std::printf("bootstrap.servers=%s\n", broker->bootstrap().c_str());
  std::fflush(stdout);
  spdlog::warn("dev-broker: in memory, not durable, ~5 MB per partition; for development only");
  install_signal_handlers();
  while (!g_stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  return 0;
}

}  // namespace civicsift
