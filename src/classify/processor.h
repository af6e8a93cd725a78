// classify: the per-comment step every front end shares (scan files, Kafka workers):
// bytes -> decode -> tenant's policy -> one scan -> one JSON record out.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "classify/classifier.h"
#include "classify/state.h"
#include "classify/verdict_writer.h"
#include "decode/decoder.h"
#include "policy/compiler.h"

namespace civicsift {

struct ProcessResult {
  bool ok = false;  // false: an error record was written
  DecodeErrorCode error{};
  std::string message;  // why, when !ok
};

// One per thread. Holds the policy snapshot it was given until `set_policies`.
class CommentProcessor {
 public:
  CommentProcessor(std::shared_ptr<const PolicySet> policies, DecoderOptions options,
                   VerdictOptions verdict_options = {});

  void set_policies(std::shared_ptr<const PolicySet> policies) { policies_ = std::move(policies); }
  const PolicySet& policies() const { return *policies_; }

  // Appends one verdict or error record (no newline) to `out`. `input` must be
  // readable for SIMDJSON_PADDING bytes past its end (see Decoder::decode).
  // With `state`, the stream's stateful rules apply too (call in stream order).
  ProcessResult process(std::string_view input, std::optional<uint64_t> line, std::string& out,
                        StreamState* state = nullptr);

  // The same for input without parser padding (a Kafka message): copied once first.
  ProcessResult process_copy(std::string_view input, std::string& out, StreamState* state = nullptr);

  // Valid after a successful process(): what was decided, for metrics and routing.
  const Comment& comment() const { return comment_; }
  const Verdict& verdict() const { return verdict_; }
  const VerdictOptions& verdict_options() const { return verdict_options_; }

 private:
  ProcessResult finish(std::variant<Comment, DecodeError> decoded, std::optional<uint64_t> line, std::string& out,
                       StreamState* state);

  std::shared_ptr<const PolicySet> policies_;
  Decoder decoder_;
  VerdictOptions verdict_options_;
  ScanContext scan_;
  Comment comment_;
  Verdict verdict_;
};

}  // namespace civicsift
