#include "classify/processor.h"

#include <fmt/format.h>

#include "classify/verdict_writer.h"

namespace civicsift {

CommentProcessor::CommentProcessor(std::shared_ptr<const PolicySet> policies, DecoderOptions options,
                                   VerdictOptions verdict_options)
    : policies_(std::move(policies)), decoder_(options), verdict_options_(verdict_options) {}

ProcessResult CommentProcessor::process(std::string_view input, std::optional<uint64_t> line, std::string& out,
                                        StreamState* state) {
  return finish(decoder_.decode(input), line, out, state);
}

ProcessResult CommentProcessor::process_copy(std::string_view input, std::string& out, StreamState* state) {
  return finish(decoder_.decode_copy(input), std::nullopt, out, state);
}

ProcessResult CommentProcessor::finish(std::variant<Comment, DecodeError> decoded, std::optional<uint64_t> line,
                                       std::string& out, StreamState* state) {
  if (auto* err = std::get_if<DecodeError>(&decoded)) {
    write_error(out, *err, line);
    return {false, err->code, std::move(err->message)};
  }
  comment_ = std::get<Comment>(decoded);
  const CompiledPolicy* policy = policies_->find(comment_.tenant);
  if (!policy) {
    const DecodeError err{DecodeErrorCode::unknown_tenant, "tenant has no policy loaded", std::string(comment_.id)};
    write_error(out, err, line);
    return {false, err.code, err.message};
  }
  classify(*policy, comment_, scan_, verdict_);
  if (state)
    state->apply({comment_.tenant, comment_.author, comment_.thread, static_cast<uint32_t>(comment_.text.size()),
                  comment_.ts_ms, comment_.direction},
                 verdict_);
  write_verdict(out, comment_, verdict_, verdict_options_);
  return {true, {}, {}};
}

}  // namespace civicsift
