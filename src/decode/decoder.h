// decode: one JSON object (one line of a file, one Kafka message) -> Comment.
// Errors are values: every rejected input gets a code and a human reason, and
// the id when it could be read, so the caller can emit an error record.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <variant>

#include "decode/comment.h"

namespace civicsift {

enum class DecodeErrorCode {
  empty_line,
  line_too_long,
  not_json,
  not_object,
  too_deep,
  trailing_garbage,
  invalid_utf8,
  missing_id,
  empty_id,
  id_not_string,
  missing_tenant,
  tenant_not_string,
  missing_text,
  text_not_string,
  invalid_field,
  unknown_tenant,  // raised by the classifier, which knows the tenants
};

std::string_view to_string(DecodeErrorCode code);

struct DecodeError {
  DecodeErrorCode code;
  std::string message;
  std::string id;  // empty when unknown
};

struct DecoderOptions {
  size_t max_bytes = 1 << 20;        // longer inputs are rejected, not parsed
  size_t max_depth = 32;             // deeper nesting (in ignored fields) is rejected
  std::string_view default_tenant;   // used when a comment carries no tenant
};

// Reuses its buffers across calls; one per thread.
class Decoder {
 public:
  explicit Decoder(DecoderOptions options = {});
  ~Decoder();
  Decoder(Decoder&&) noexcept;
  Decoder& operator=(Decoder&&) noexcept;

  // `input` excludes the line terminator; a trailing '\r' and a leading BOM are tolerated.
  // `input` must stay readable for SIMDJSON_PADDING (64) bytes past its end; use
  // decode_copy() when that cannot be promised.
  std::variant<Comment, DecodeError> decode(std::string_view input);
  std::variant<Comment, DecodeError> decode_copy(std::string_view input);

  const DecoderOptions& options() const { return options_; }

 private:
  struct Impl;
  DecoderOptions options_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace civicsift
