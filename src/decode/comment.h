// A comment as the rest of the pipeline sees it. Fields view memory owned by the
// decoder that produced them and stay valid until its next decode call.
#pragma once

#include <cstdint>
#include <string_view>

#include "common/time.h"

namespace civicsift {

enum class Direction : unsigned char { inbound, outbound };

struct Comment {
  std::string_view id;
  std::string_view tenant;
  std::string_view text;
  std::string_view author;   // empty when absent
  std::string_view thread;   // empty when absent
  std::string_view channel;  // empty when absent
  std::string_view ts;       // RFC 3339, empty when absent
  int64_t ts_ms = kNoTime;   // ts as Unix milliseconds; kNoTime when absent
  Direction direction = Direction::inbound;
};

}  // namespace civicsift
