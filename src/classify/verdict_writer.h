// classify: Verdict -> one line of JSON. The matched text is never echoed (it
// may be personal information): spans are byte offsets into the comment's text.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "classify/classifier.h"
#include "decode/decoder.h"

namespace civicsift {

struct VerdictOptions {
  // Adds "redacted_text": the comment's text with every matched span replaced by
  // its category in brackets, for moderation queues that must not hold personal data.
  bool redacted_text = false;
  // At most this many matches are listed (0: all); "matches_omitted" then counts the
  // rest. A hostile comment can match tens of thousands of times, and a record must
  // stay under the broker's size limit to be published at all.
  size_t max_matches = 0;
};

// Appends {"id","tenant","action","categories","matches","matches_omitted"?,"hits_capped"?,"routes","redacted_text"?,"policy"}
// (no newline).
void write_verdict(std::string& out, const Comment& comment, const Verdict& verdict,
                   const VerdictOptions& options = {});

// `text` with each matched span (overlapping spans merged) replaced by "[category]";
// a placeholder instead when the scan stopped recording hits (Verdict::hits_capped).
std::string redact(std::string_view text, const Verdict& verdict);

// Appends {"line"?,"id"?,"error":{"code","message"}} (no newline).
void write_error(std::string& out, const DecodeError& error, std::optional<uint64_t> line);

// Appends `s` as a JSON string literal. Control characters, quotes, backslashes and
// U+2028/U+2029 are escaped; bytes that are not UTF-8 become U+FFFD.
void append_json_string(std::string& out, std::string_view s);

}  // namespace civicsift
