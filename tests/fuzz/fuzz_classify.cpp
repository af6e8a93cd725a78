// libFuzzer target: any bytes as one input message -> decode -> classify (with the
// stream's stateful rules) -> exactly one record that parses as JSON.
#include <simdjson.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "classify/processor.h"
#include "fuzz_common.h"

using namespace civicsift;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static CommentProcessor processor(fuzz::test_policies(), DecoderOptions{1 << 16, 32, "town"},
                                    VerdictOptions{true});
  static StreamState state(1000);
  static simdjson::dom::parser parser;
  std::string out;
  const ProcessResult r = processor.process_copy(std::string_view(reinterpret_cast<const char*>(data), size), out,
                                                 &state);
  simdjson::dom::element record;
  if (out.find('\n') != std::string::npos || parser.parse(out).get(record)) std::abort();  // one JSON record
  std::string_view field;
  if (r.ok ? record["action"].get(field) : record["error"]["code"].get(field)) std::abort();
  return 0;
}
