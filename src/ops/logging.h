// ops: process-wide logging. Text for people, JSON lines for log pipelines. Callers
// never pass comment text or personal data to a log call; the formats add none.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace civicsift {

enum class LogFormat { text, json };

struct LogOptions {
  LogFormat format = LogFormat::text;
  std::string level = "info";  // trace, debug, info, warn, error, critical, off
};

std::optional<LogFormat> parse_log_format(std::string_view s);
bool is_log_level(std::string_view s);

// Applies to the default spdlog logger (stderr).
void configure_logging(const LogOptions& options);

}  // namespace civicsift
