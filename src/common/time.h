// Time values in the input and in policies, as Unix milliseconds (UTC).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace civicsift {

// "90s", "30m", "24h", "7d" -> milliseconds; nullopt when malformed.
std::optional<int64_t> parse_duration_ms(std::string_view s);

// RFC 3339 date-time ("2026-10-05T14:03:00Z", "...+02:00", fractional seconds) or a
// plain date ("2026-10-05", midnight UTC) -> Unix milliseconds; nullopt when malformed.
std::optional<int64_t> parse_timestamp_ms(std::string_view s);

// A UTC offset ("-04:00", "+05:30", "Z") -> milliseconds to add to UTC for local
// time; nullopt when malformed.
std::optional<int64_t> parse_utc_offset_ms(std::string_view s);

// Now, as Unix milliseconds.
int64_t now_ms();

}  // namespace civicsift
