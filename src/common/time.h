// Time values in the input and in policies, as Unix milliseconds (UTC).
#pragma once

#include <cstdint>
#include <limits>
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

// A time not given (a comment without `ts`). Not 0: that is 1970-01-01T00:00:00Z,
// a time like any other; no parsed timestamp (years 0000-9999) comes near this one.
inline constexpr int64_t kNoTime = std::numeric_limits<int64_t>::min();

// `ts_ms`, or now when it is kNoTime.
inline int64_t time_or_now(int64_t ts_ms) { return ts_ms != kNoTime ? ts_ms : now_ms(); }

}  // namespace civicsift
