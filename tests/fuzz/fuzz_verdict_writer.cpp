// libFuzzer target: a comment built from any bytes is classified and its verdict
// written; the JSON parses back with simdjson to the same values.
#include <simdjson.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "classify/classifier.h"
#include "classify/verdict_writer.h"
#include "fuzz_common.h"

using namespace civicsift;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

// What append_json_string makes of `s` once parsed back: invalid UTF-8 becomes U+FFFD.
std::string json_roundtrip(std::string_view s) {
  std::string json;
  append_json_string(json, s);
  simdjson::dom::parser parser;
  std::string_view back;
  check(!parser.parse(json).get(back));
  return std::string(back);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto policies = fuzz::test_policies();
  static ScanContext scan;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  // id, then text, split at the first NUL.
  const size_t cut = input.find('\0');
  Comment c;
  c.id = input.substr(0, cut == std::string_view::npos ? 0 : cut);
  c.tenant = "town";
  c.text = cut == std::string_view::npos ? input : input.substr(cut + 1);
  const CompiledPolicy& policy = *policies->find("town");
  Verdict v;
  classify(policy, c, scan, v);
  std::string out;
  write_verdict(out, c, v, VerdictOptions{true});

  simdjson::dom::parser parser;
  simdjson::dom::element e;
  check(!parser.parse(out).get(e));
  check(std::string_view(e["id"]) == json_roundtrip(c.id));
  check(std::string_view(e["tenant"]) == "town");
  check(std::string_view(e["action"]) == to_string(v.action));
  check(std::string_view(e["policy"]) == policy.label());
  uint32_t categories = 0;
  for (auto cat : e["categories"].get_array()) categories |= 1u << static_cast<unsigned>(*parse_category(cat));
  check(categories == v.categories);
  size_t i = 0;
  for (auto m : e["matches"].get_array()) {
    check(i < v.matches.size());
    const Match& want = v.matches[i++];
    check(std::string_view(m["rule"]) == policy.rule(want.rule).id);
    check(uint64_t(m["start"]) == want.start && uint64_t(m["end"]) == want.end);
    check(want.start <= want.end && want.end <= c.text.size());
  }
  check(i == v.matches.size());
  check(std::string_view(e["redacted_text"]) == json_roundtrip(redact(c.text, v)));
  return 0;
}
