// Hostile input: whatever arrives gets exactly one record, a verdict or an error,
// that parses as JSON. Time and memory are linear in the input; that is asserted by
// the BM_HostileText benchmarks (bench_classify), not here.
#include <gtest/gtest.h>
#include <simdjson.h>

#include "classify/processor.h"
#include "classify/verdict_writer.h"
#include "test_util.h"

using namespace civicsift;

namespace {

// The five full packs: hostile input meets the real rules.
std::shared_ptr<const PolicySet> packs() {
  static const auto set = [] {
    auto r = load_policy_set(CIVICSIFT_SOURCE_DIR "/patterns", CompileOptions{default_cache_dir()});
    if (auto* e = std::get_if<PolicyError>(&r)) throw std::runtime_error(e->to_string());
    return std::get<std::shared_ptr<const PolicySet>>(r);
  }();
  return set;
}

std::string comment(std::string_view text, std::string_view tenant = "windsor") {
  std::string json = "{\"id\":\"h1\",\"tenant\":";
  append_json_string(json, tenant);
  json += ",\"text\":";
  append_json_string(json, text);
  json += '}';
  return json;
}

struct Outcome {
  bool ok = false;
  std::string action;      // a verdict's
  std::string error_code;  // an error record's
  std::vector<std::string> categories;
};

// Runs one line through the processor and checks that exactly one JSON object came out.
Outcome run(CommentProcessor& p, const std::string& line) {
  std::string out;
  const ProcessResult r = p.process_copy(line, out);
  Outcome o;
  o.ok = r.ok;
  EXPECT_EQ(out.find('\n'), std::string::npos);
  simdjson::dom::parser parser;
  simdjson::dom::element e;
  EXPECT_EQ(parser.parse(out).get(e), simdjson::SUCCESS) << out.substr(0, 200);
  if (r.ok) {
    std::string_view action;
    EXPECT_EQ(e["action"].get(action), simdjson::SUCCESS);
    o.action = action;
    for (auto c : e["categories"].get_array()) o.categories.emplace_back(std::string_view(c));
  } else {
    std::string_view code;
    EXPECT_EQ(e["error"]["code"].get(code), simdjson::SUCCESS) << out.substr(0, 200);
    o.error_code = code;
  }
  return o;
}

std::string repeat(std::string_view unit, size_t bytes) {
  std::string s;
  s.reserve(bytes + unit.size());
  while (s.size() < bytes) s += unit;
  return s;
}

bool has(const Outcome& o, const char* category) {
  return std::find(o.categories.begin(), o.categories.end(), category) != o.categories.end();
}

}  // namespace

TEST(HostileInput, RegexBaitGetsAVerdict) {
  CommentProcessor p(packs(), DecoderOptions{});
  // Shapes that make backtracking engines explode: long runs that almost match the
  // address, phone, price and e-mail expressions, nested groups, endless repeats.
  for (const std::string& text :
       {repeat("a", 200000) + "!", repeat("1 ", 100000), repeat("12 aaaa ", 20000) + "x",
        repeat("$1,", 50000) + " fir", repeat("a@a", 60000), repeat("((((", 50000), repeat("f*", 100000),
        repeat("fuuuu", 40000), repeat("(519) ", 30000)})
    EXPECT_TRUE(run(p, comment(text)).ok) << text.substr(0, 20);
}

TEST(HostileInput, TenMegabyteTextsAreClassifiedOrRefusedByTheLimit) {
  const std::string text = repeat("the park on Main needs a new bench ", 10 << 20) + " you fucking idiot";
  CommentProcessor big(packs(), DecoderOptions{16 << 20, 32, {}});
  Outcome o = run(big, comment(text));
  ASSERT_TRUE(o.ok);
  EXPECT_TRUE(has(o, "profanity"));
  CommentProcessor limited(packs(), DecoderOptions{});  // 1 MiB
  EXPECT_EQ(run(limited, comment(text)).error_code, "line_too_long");
}

TEST(HostileInput, AMillionTinyMessagesEachGetAVerdict) {
  CommentProcessor p(packs(), DecoderOptions{});
  std::string out;
  const std::string line = R"({"id":"t","tenant":"pickering","text":"k"})";
  size_t verdicts = 0, lines = 0;
  for (int i = 0; i < 1'000'000; ++i) {
    out.clear();
    verdicts += p.process_copy(line, out).ok;
    lines += !out.empty();
  }
  EXPECT_EQ(verdicts, 1'000'000u);
  EXPECT_EQ(lines, 1'000'000u);
}

TEST(HostileInput, EmojiBidiOverridesAndZeroWidthStormsStillShowWhatTheyHide) {
  CommentProcessor p(packs(), DecoderOptions{});
  EXPECT_TRUE(run(p, comment(repeat("\xF0\x9F\x98\x80\xF0\x9F\x94\xA5", 400000))).ok);  // all emoji, 400 KB
  EXPECT_TRUE(run(p, comment(repeat("\xE2\x80\xAE\xE2\x80\xAD", 300000))).ok);          // RLO/LRO storm
  EXPECT_TRUE(run(p, comment(repeat("\xE2\x80\x8B", 600000))).ok);                      // ZWSP storm
  // Zero-width joiners and right-to-left overrides between the letters hide nothing.
  const Outcome zw = run(p, comment("you f\xE2\x80\x8Bu\xE2\x80\x8C" "c\xE2\x80\x8Dk\xE2\x80\x8B off"));
  EXPECT_TRUE(has(zw, "profanity"));
  const Outcome rlo = run(p, comment("\xE2\x80\xAE" "you fuck off" "\xE2\x80\xAC"));
  EXPECT_TRUE(has(rlo, "profanity"));
}

TEST(HostileInput, SeparatorsBetweenEveryLetter) {
  CommentProcessor p(packs(), DecoderOptions{});
  EXPECT_TRUE(has(run(p, comment("you are a f.u.c.k.i.n.g i.d.i.o.t")), "profanity"));
  EXPECT_TRUE(run(p, comment(repeat("a.", 500000))).ok);
  EXPECT_TRUE(run(p, comment(repeat("f u c k ", 100000))).ok);
  EXPECT_TRUE(run(p, comment(repeat("x-", 500000))).ok);
}

TEST(HostileInput, DeepNestingIsRefusedWithoutRecursion) {
  CommentProcessor p(packs(), DecoderOptions{});
  for (size_t depth : {33u, 1000u, 500000u}) {
    const std::string nested = std::string(depth, '[') + std::string(depth, ']');
    EXPECT_EQ(run(p, R"({"id":"n","tenant":"windsor","text":"hi","extra":)" + nested + "}").error_code, "too_deep")
        << depth;
  }
  EXPECT_EQ(run(p, std::string(1'000'000, '{')).ok, false);
}

TEST(HostileInput, InvalidUtf8InEveryFieldIsAnErrorRecordThatIsValidJson) {
  CommentProcessor p(packs(), DecoderOptions{});
  const std::string bad = "bad\xC3(\xFF\xED\xA0\x80";
  for (const char* field : {"id", "tenant", "text", "author", "thread", "channel", "ts", "direction", "unknown"}) {
    std::string line = R"({"id":"u1","tenant":"windsor","text":"hello")";
    line += ",\"";
    line += field;
    line += "\":\"" + bad + "\"}";
    const Outcome o = run(p, line);
    EXPECT_FALSE(o.ok) << field;
    EXPECT_EQ(o.error_code, "invalid_utf8") << field;
  }
  // A raw invalid key, and control bytes where JSON forbids them.
  EXPECT_FALSE(run(p, "{\"te\xFFxt\":\"x\",\"id\":\"a\",\"tenant\":\"windsor\",\"text\":\"t\"}").ok);
  EXPECT_FALSE(run(p, std::string("{\"id\":\"a\",\"tenant\":\"windsor\",\"text\":\"a\0b\"}", 40)).ok);
  // Escaped NULs inside the text are text like any other.
  EXPECT_TRUE(run(p, R"({"id":"a","tenant":"windsor","text":"a\u0000b\u0000 fuck"})").ok);
}
