// civicsift run: the Kafka service; civicsift dev-broker: a local broker.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <thread>

#include "app/commands.h"
#include "transport/dev_broker.h"
#include "transport/service.h"

namespace civicsift {
namespace {

std::atomic<bool> g_stop{false};
Service* g_service = nullptr;

extern "C" void on_signal(int) {
  g_stop.store(true);
  if (g_service) g_service->stop();
}

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
}

}  // namespace

int run_service(const RunOptions& options) {
  ServiceConfig config = options.defaults;
  if (!options.config_file.empty()) {
    auto loaded = load_service_config(options.config_file, config);
    if (auto* e = std::get_if<std::string>(&loaded)) {
      spdlog::error("configuration: {}", *e);
      return 2;
    }
    config = std::get<ServiceConfig>(loaded);
  }
  // Flags given on the command line override the file.
  for (const auto& [key, value] : options.overrides) {
    if (key == "brokers") config.brokers = value;
    else if (key == "group") config.group = value;
    else if (key == "threads") config.threads = static_cast<unsigned>(std::stoul(value));
    else if (key == "patterns") config.patterns = value;
  }
  PolicyOptions policy{config.patterns, config.cache_dir};
  auto policies = load_policies_or_report(policy);
  if (!policies) return 2;
  Service service(config, policies);
  g_service = &service;
  install_signal_handlers();
  const std::string error = service.run();
  g_service = nullptr;
  const auto& c = service.counters();
  spdlog::info("stopped: {} consumed, {} verdicts, {} dead letters, {} acknowledged", c.consumed.load(),
               c.verdicts.load(), c.dead_letters.load(), c.acknowledged.load());
  if (!error.empty()) {
    spdlog::error("{}", error);
    return 1;
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
