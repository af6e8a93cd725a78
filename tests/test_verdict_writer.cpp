#include <gtest/gtest.h>
#include <simdjson.h>

#include "classify/verdict_writer.h"
#include "test_util.h"

using namespace civicsift;
using civicsift::testing::TempDir;

namespace {
std::string roundtrip(std::string_view s) {
  std::string json;
  append_json_string(json, s);
  simdjson::padded_string padded(json);
  simdjson::ondemand::parser parser;
  auto doc = parser.iterate(padded);
  std::string_view back;
  EXPECT_EQ(doc.get_string().get(back), simdjson::SUCCESS) << json;
  return std::string(back);
}
}  // namespace

TEST(JsonString, EscapesAndRoundTripsThroughSimdjson) {
  for (std::string s : {std::string("plain"), std::string("quote \" backslash \\ slash /"),
                        std::string("tab\tnl\ncr\r"), std::string("nul\0inside", 10), std::string("\x01\x1f\x7f"),
                        std::string("caf\xC3\xA9 \xF0\x9F\x98\x80"), std::string("")})
    EXPECT_EQ(roundtrip(s), s);
}

// The plain runs are found sixteen bytes at a time: every special byte, at every
// position of strings longer than one block, ends its run where a byte loop would.
TEST(JsonString, FindsEverySpecialByteAtEveryPositionOfLongStrings) {
  for (const std::string& special : std::vector<std::string>{"\"", "\\", "\n", std::string("\0", 1), "\x7f", "\xC3\xA9", "\xFF", "\xE2\x80\xA8"}) {
    for (size_t length : {15u, 16u, 17u, 31u, 32u, 33u, 47u}) {
      for (size_t at = 0; at <= length; ++at) {
        std::string s(length, 'a');
        for (size_t k = 0; k < length; ++k) s[k] = static_cast<char>('a' + k % 26);
        s.insert(at, special);
        if (special == "\xFF") {
          std::string json;
          append_json_string(json, s);
          EXPECT_EQ(json, "\"" + s.substr(0, at) + "\\ufffd" + s.substr(at + 1) + "\"") << length << " " << at;
        } else if (special == "\xE2\x80\xA8") {
          std::string json;
          append_json_string(json, s);
          EXPECT_EQ(json, "\"" + s.substr(0, at) + "\\u2028" + s.substr(at + 3) + "\"") << length << " " << at;
        } else {
          EXPECT_EQ(roundtrip(s), s) << length << " " << at;
        }
      }
    }
  }
}

TEST(JsonString, EscapesLineSeparatorsAndReplacesInvalidUtf8) {
  std::string json;
  append_json_string(json, "a\xE2\x80\xA8" "b\xE2\x80\xA9");
  EXPECT_EQ(json, "\"a\\u2028b\\u2029\"");
  EXPECT_EQ(roundtrip("x\xC3(y\xFF"), "x\xEF\xBF\xBD(y\xEF\xBF\xBD");
  EXPECT_EQ(roundtrip("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // encoded surrogate
}

TEST(VerdictWriter, WritesTheContractFields) {
  TempDir dir;
  dir.write("lexicons/l.yaml", "lexicon: l\nterms: [shit]\n");
  auto policy = civicsift::testing::compile_or_fail(dir.write("t.yaml", R"(
tenant: town
lexicons: [l]
rules:
  - id: town.swears
    category: profanity
    clause: "Town \"2.1\""
    action: remove
    routes: [queue-a]
    lexicon_terms: [l]
)"));
  ASSERT_TRUE(policy);
  Comment c;
  c.id = "id \"1\"\xE2\x80\xA8";
  c.tenant = "town";
  c.text = "oh shit";
  ScanContext ctx;
  Verdict v;
  classify(*policy, c, ctx, v);
  std::string out;
  write_verdict(out, c, v);

  simdjson::padded_string padded(out);
  simdjson::ondemand::parser parser;
  simdjson::ondemand::document doc = parser.iterate(padded);
  EXPECT_EQ(std::string_view(doc["id"].get_string()), c.id);
  EXPECT_EQ(std::string_view(doc["tenant"].get_string()), "town");
  EXPECT_EQ(std::string_view(doc["action"].get_string()), "remove");
  auto cats = doc["categories"].get_array();
  EXPECT_EQ(std::string_view(cats.at(0).get_string()), "profanity");
  auto m = doc["matches"].get_array().at(0).get_object();
  EXPECT_EQ(std::string_view(m["rule"].get_string()), "town.swears");
  EXPECT_EQ(std::string_view(m["category"].get_string()), "profanity");
  EXPECT_EQ(std::string_view(m["clause"].get_string()), "Town \"2.1\"");
  EXPECT_EQ(int64_t(m["start"].get_int64()), 3);
  EXPECT_EQ(int64_t(m["end"].get_int64()), 7);
  EXPECT_EQ(std::string_view(doc["routes"].get_array().at(0).get_string()), "queue-a");
  EXPECT_EQ(std::string_view(doc["policy"].get_string()), policy->label());
  EXPECT_EQ(out.find("shit"), std::string::npos) << "matched text must not be echoed";
}

TEST(VerdictWriter, ErrorRecordCarriesLineIdCodeAndMessage) {
  std::string out;
  write_error(out, DecodeError{DecodeErrorCode::text_not_string, "field \"text\" must be a string", "c7"}, 12);
  EXPECT_EQ(out,
            R"({"line":12,"id":"c7","error":{"code":"text_not_string","message":"field \"text\" must be a string"}})");
  out.clear();
  write_error(out, DecodeError{DecodeErrorCode::not_json, "bad", ""}, std::nullopt);
  EXPECT_EQ(out, R"({"error":{"code":"not_json","message":"bad"}})");
}

TEST(VerdictWriter, RedactedTextReplacesEverySpanByItsCategory) {
  TempDir dir;
  dir.write("lexicons/l.yaml", "lexicon: l\nterms: [shit]\n");
  const auto file = dir.write("t.yaml", R"(tenant: t
rules:
  - {id: t.swear, category: profanity, clause: "1", action: remove, lexicon_terms: [l],
     examples: {match: [shit], no_match: [fine]}}
  - {id: t.phone, category: pii, clause: "2", action: remove, regex: ['\d{3}-\d{3}-\d{4}'],
     examples: {match: [555-555-0199], no_match: [fine]}}
  - {id: t.call, category: pii, clause: "3", action: review, regex: ['call \d{3}'],
     examples: {match: [call 555], no_match: [fine]}}
lexicons: [l]
)");
  auto policy = civicsift::testing::compile_or_fail(file);
  Verdict v;
  civicsift::testing::fired(*policy, "oh shit, call 555-555-0199 now", Direction::inbound, &v);
  Comment c;
  c.id = "r1";
  c.tenant = "t";
  c.text = "oh shit, call 555-555-0199 now";
  EXPECT_EQ(redact(c.text, v), "oh [profanity], [pii] now");  // overlapping spans: one replacement
  std::string out;
  write_verdict(out, c, v, VerdictOptions{true});
  simdjson::padded_string padded(out);
  simdjson::dom::parser parser;
  simdjson::dom::element e;
  ASSERT_EQ(parser.parse(padded).get(e), simdjson::SUCCESS) << out;
  EXPECT_EQ(std::string_view(e["redacted_text"]), "oh [profanity], [pii] now");
  std::string plain;
  write_verdict(plain, c, v);
  EXPECT_EQ(plain.find("redacted_text"), std::string::npos);
  EXPECT_EQ(plain.find("555"), std::string::npos);  // a verdict never carries the text
}

// A comment that matches tens of thousands of times must still give a record the
// broker takes: the first max_matches are listed, the rest only counted.
TEST(VerdictWriter, MaxMatchesListsTheFirstSpansAndCountsTheRest) {
  TempDir dir;
  auto policy = civicsift::testing::compile_or_fail(dir.write(
      "t.yaml", "tenant: town\nrules: [{id: town.swears, category: profanity, clause: '1', action: remove, terms: [shit]}]\n"));
  ASSERT_TRUE(policy);
  std::string text;
  for (int i = 0; i < 5000; ++i) text += "shit ";
  Verdict v;
  civicsift::testing::fired(*policy, text, Direction::inbound, &v);
  ASSERT_EQ(v.matches.size(), 5000u);
  Comment c;
  c.id = "many";
  c.tenant = "town";
  c.text = text;
  std::string all, capped;
  write_verdict(all, c, v);
  write_verdict(capped, c, v, VerdictOptions{false, 3});
  EXPECT_EQ(all.find("matches_omitted"), std::string::npos);
  EXPECT_GT(all.size(), 100 * capped.size());
  simdjson::padded_string padded(capped);
  simdjson::dom::parser parser;
  simdjson::dom::element e;
  ASSERT_EQ(parser.parse(padded).get(e), simdjson::SUCCESS) << capped;
  simdjson::dom::array listed = e["matches"];
  ASSERT_EQ(listed.size(), 3u);
  EXPECT_EQ(int64_t(listed.at(2)["start"]), 10);  // the first three, in text order
  EXPECT_EQ(int64_t(e["matches_omitted"]), 4997);
  EXPECT_EQ(std::string_view(e["action"]), "remove");
}
