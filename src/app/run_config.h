// app: the configuration of `civicsift run`: one YAML file (deploy/civicsift.yaml)
// for the Kafka service, the metrics endpoint, policy reloads and logs.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <variant>

#include "ops/logging.h"
#include "transport/service.h"

namespace civicsift {

struct RunConfig {
  ServiceConfig service;
  std::string metrics_address = "0.0.0.0:9464";  // host:port of /metrics, /healthz, /readyz; empty: off
  bool watch_patterns = false;                   // reload when the patterns folder changes
  int watch_interval_ms = 2000;
  std::optional<LogFormat> log_format;           // unset: the command line's
  std::string log_level;                         // empty: the command line's
};

// Reads a YAML config file over `base`; unknown keys and bad values are errors naming the key.
std::variant<RunConfig, std::string> load_run_config(const std::filesystem::path& file, RunConfig base);

}  // namespace civicsift
