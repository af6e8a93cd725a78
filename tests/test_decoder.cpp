#include <gtest/gtest.h>

#include "decode/decoder.h"

using namespace civicsift;

namespace {
DecodeErrorCode error_of(std::string_view input, DecoderOptions options = {}) {
  Decoder d(options);
  auto r = d.decode_copy(input);
  if (!std::holds_alternative<DecodeError>(r)) {
    ADD_FAILURE() << "decoded without error: " << input;
    return DecodeErrorCode::unknown_tenant;
  }
  return std::get<DecodeError>(r).code;
}

Comment decode_ok(Decoder& d, std::string_view input) {
  auto r = d.decode_copy(input);
  if (auto* e = std::get_if<DecodeError>(&r)) {
    ADD_FAILURE() << "error " << to_string(e->code) << ": " << e->message;
    return {};
  }
  return std::get<Comment>(r);
}
}  // namespace

TEST(Decoder, ReadsEveryContractField) {
  Decoder d;
  const Comment c = decode_ok(
      d, R"({"id":"c1","tenant":"windsor","text":"Pothole on Ouellette","author":"u7","thread":"t2",)"
         R"("channel":"facebook","direction":"outbound","ts":"2026-10-05T14:03:00Z","extra":{"a":[1,2,{"b":null}]}})");
  EXPECT_EQ(c.id, "c1");
  EXPECT_EQ(c.tenant, "windsor");
  EXPECT_EQ(c.text, "Pothole on Ouellette");
  EXPECT_EQ(c.author, "u7");
  EXPECT_EQ(c.thread, "t2");
  EXPECT_EQ(c.channel, "facebook");
  EXPECT_EQ(c.ts, "2026-10-05T14:03:00Z");
  EXPECT_EQ(c.ts_ms, 1'791'208'980'000);
  EXPECT_EQ(c.direction, Direction::outbound);
}

// The epoch is a time like any other; only a missing (or null) ts means "now".
TEST(Decoder, TsAtTheEpochIsATimeAndNoTsIsNone) {
  Decoder d;
  EXPECT_EQ(decode_ok(d, R"({"id":"a","tenant":"t","text":"x","ts":"1970-01-01T00:00:00Z"})").ts_ms, 0);
  EXPECT_EQ(decode_ok(d, R"({"id":"a","tenant":"t","text":"x"})").ts_ms, kNoTime);
  EXPECT_EQ(decode_ok(d, R"({"id":"a","tenant":"t","text":"x","ts":null})").ts_ms, kNoTime);
  // A date alone is no moment (midnight in which zone?) and "" no time: both are
  // refused, not taken as midnight UTC or as no ts.
  EXPECT_EQ(error_of(R"({"id":"a","tenant":"t","text":"x","ts":"2026-05-01"})"), DecodeErrorCode::invalid_field);
  EXPECT_EQ(error_of(R"({"id":"a","tenant":"t","text":"x","ts":""})"), DecodeErrorCode::invalid_field);
}

TEST(Decoder, DefaultsDirectionAndTenant) {
  DecoderOptions o;
  o.default_tenant = "pickering";
  Decoder d(o);
  const Comment c = decode_ok(d, R"({"id":"c1","text":"hi"})");
  EXPECT_EQ(c.tenant, "pickering");
  EXPECT_EQ(c.direction, Direction::inbound);
  EXPECT_EQ(decode_ok(d, R"({"id":"c1","tenant":null,"text":"hi"})").tenant, "pickering");
  EXPECT_EQ(error_of(R"({"id":"c1","tenant":null,"text":"hi"})"), DecodeErrorCode::tenant_not_string);
}

TEST(Decoder, UnescapesTextIncludingNul) {
  Decoder d;
  const Comment c = decode_ok(d, R"({"id":"c1","tenant":"t","text":"a\u0000b \"q\" \u00e9"})");
  EXPECT_EQ(c.text, std::string_view("a\0b \"q\" \xC3\xA9", 10));
}

// Keys are compared where they stand in the input; one spelled with escapes still counts.
TEST(Decoder, ReadsKeysSpelledWithEscapes) {
  Decoder d;
  const Comment c = decode_ok(d, R"({"i\u0064":"c1","ten\u0061nt":"t","a\"b":1,"":2,"te\u0078t":"hi"})");
  EXPECT_EQ(c.id, "c1");
  EXPECT_EQ(c.tenant, "t");
  EXPECT_EQ(c.text, "hi");
  EXPECT_EQ(error_of(R"({"id":"c1","tenant":"t","text":"x","bad\q":1})"), DecodeErrorCode::not_json);
}

TEST(Decoder, ToleratesCrlfAndByteOrderMark) {
  Decoder d;
  EXPECT_EQ(decode_ok(d, "{\"id\":\"a\",\"tenant\":\"t\",\"text\":\"x\"}\r").id, "a");
  EXPECT_EQ(decode_ok(d, "\xEF\xBB\xBF{\"id\":\"b\",\"tenant\":\"t\",\"text\":\"x\"}").id, "b");
}

TEST(Decoder, RejectsEveryBadInputWithItsOwnCode) {
  EXPECT_EQ(error_of(""), DecodeErrorCode::empty_line);
  EXPECT_EQ(error_of("  \r"), DecodeErrorCode::empty_line);
  EXPECT_EQ(error_of("not json at all"), DecodeErrorCode::not_json);
  EXPECT_EQ(error_of("{\"id\":"), DecodeErrorCode::not_json);
  EXPECT_EQ(error_of("[1,2,3]"), DecodeErrorCode::not_object);
  EXPECT_EQ(error_of("\"just a string\""), DecodeErrorCode::not_object);
  EXPECT_EQ(error_of(R"({"tenant":"t","text":"x"})"), DecodeErrorCode::missing_id);
  EXPECT_EQ(error_of(R"({"id":"","tenant":"t","text":"x"})"), DecodeErrorCode::empty_id);
  EXPECT_EQ(error_of(R"({"id":42,"tenant":"t","text":"x"})"), DecodeErrorCode::id_not_string);
  EXPECT_EQ(error_of(R"({"id":"a","text":"x"})"), DecodeErrorCode::missing_tenant);
  EXPECT_EQ(error_of(R"({"id":"a","tenant":7,"text":"x"})"), DecodeErrorCode::tenant_not_string);
  EXPECT_EQ(error_of(R"({"id":"a","tenant":"t"})"), DecodeErrorCode::missing_text);
  EXPECT_EQ(error_of(R"({"id":"a","tenant":"t","text":17})"), DecodeErrorCode::text_not_string);
  EXPECT_EQ(error_of(R"({"id":"a","tenant":"t","text":null})"), DecodeErrorCode::text_not_string);
  EXPECT_EQ(error_of(R"({"id":"a","tenant":"t","text":"x","direction":"sideways"})"), DecodeErrorCode::invalid_field);
  EXPECT_EQ(error_of(R"({"id":"a","tenant":"t","text":"x","author":5})"), DecodeErrorCode::invalid_field);
  EXPECT_EQ(error_of(R"({"id":"a","tenant":"t","text":"x"} trailing)"), DecodeErrorCode::trailing_garbage);
  EXPECT_EQ(error_of(R"({"id":"a","tenant":"t","text":"x"}{})"), DecodeErrorCode::trailing_garbage);
  EXPECT_EQ(error_of("{\"id\":\"a\",\"tenant\":\"t\",\"text\":\"\xC3\x28\"}"), DecodeErrorCode::invalid_utf8);
  EXPECT_EQ(error_of(R"({"id":"a","tenant":"t","text":"\ud800"})"), DecodeErrorCode::not_json);
}

TEST(Decoder, CatchesMalformedJsonInIgnoredFields) {
  EXPECT_EQ(error_of(R"({"id":"a","tenant":"t","text":"x","junk":[1,,2]})"), DecodeErrorCode::not_json);
  EXPECT_EQ(error_of(R"({"id":"a","tenant":"t","text":"x","junk":tru})"), DecodeErrorCode::not_json);
}

TEST(Decoder, BoundsNestingDepth) {
  std::string deep = R"({"id":"a","tenant":"t","text":"x","n":)";
  deep += std::string(200, '[') + std::string(200, ']') + "}";
  EXPECT_EQ(error_of(deep), DecodeErrorCode::too_deep);
  std::string shallow = R"({"id":"a","tenant":"t","text":"x","n":)";
  shallow += std::string(10, '[') + std::string(10, ']') + "}";
  Decoder d;
  EXPECT_EQ(decode_ok(d, shallow).id, "a");
  // The limit counts objects and arrays (the root's among them), not the scalar inside.
  const auto nested = [](int levels, const std::string& inside) {
    return R"({"id":"a","tenant":"t","text":"x","n":)" + std::string(levels, '[') + inside + std::string(levels, ']') + "}";
  };
  EXPECT_EQ(decode_ok(d, nested(31, "")).id, "a");
  EXPECT_EQ(decode_ok(d, nested(31, "1")).id, "a");
  EXPECT_EQ(error_of(nested(32, "")), DecodeErrorCode::too_deep);
  EXPECT_EQ(error_of(nested(32, "1")), DecodeErrorCode::too_deep);
}

TEST(Decoder, RejectsOverlongInputWithoutParsing) {
  DecoderOptions o;
  o.max_bytes = 64;
  std::string big = R"({"id":"a","tenant":"t","text":")" + std::string(100, 'x') + "\"}";
  EXPECT_EQ(error_of(big, o), DecodeErrorCode::line_too_long);
}

TEST(Decoder, DoesNotCountACrlfEndingTowardTheLimit) {
  const std::string line = R"({"id":"a","tenant":"t","text":"x"})";
  DecoderOptions o;
  o.max_bytes = line.size();
  Decoder d(o);
  EXPECT_EQ(decode_ok(d, line + "\r").id, "a");
  EXPECT_EQ(error_of(line + " \r", o), DecodeErrorCode::line_too_long);
}

// Wherever the id can be known, the error record names it, so the sender can trace
// which comment failed.
TEST(Decoder, KeepsTheIdInErrorsWhenItWasRead) {
  Decoder d;
  const auto id_in_error = [&](const std::string& line) -> std::string {
    auto r = d.decode_copy(line);
    if (!std::holds_alternative<DecodeError>(r)) return "(decoded)";
    return std::get<DecodeError>(r).id;
  };
  for (const std::string after_id : {
           R"("tenant":"t","text":17})",                // a contract field of the wrong type
           R"("tenant":"t","text":"x","text":"y"})",    // a field given twice
           R"("tenant":"t","text":"x","au\q":1})",      // a bad escape in a key
           R"("tenant":"t","text":"x",})",              // a trailing comma
           R"("tenant":"t","text":"x","n":01})",        // a malformed value in an unknown field
           R"("tenant":"t","text":"x"} trailing)",      // content after the object
           R"("tenant":"t","text":"x"}{"id":"c10"})",  // a second object
       })
    EXPECT_EQ(id_in_error(R"({"id":"c9",)" + after_id), "c9") << after_id;
  // Before the id, an object that is otherwise whole still gives it.
  EXPECT_EQ(id_in_error(R"({"tenant":"t","text":5,"id":"c1"})"), "c1");
  EXPECT_EQ(id_in_error(R"({"tenant":"t","text":"x","text":"y","id":"c2"})"), "c2");
  EXPECT_EQ(id_in_error(R"({"tenant":"t","direction":"sideways","id":"c3","text":"x"})"), "c3");
  EXPECT_EQ(id_in_error(R"({"tenant":"t","text":"x","id":7})"), "");
  EXPECT_EQ(id_in_error(R"({"tenant":"t","text":"x",})"), "");
  EXPECT_EQ(id_in_error(R"({"tenant":"t","text":"x"} {"id":"c10"})"), "");  // not the next object's
  // A line that breaks JSON's text rules elsewhere (a Latin-1 byte, a raw tab or
  // control character in a string) gives a sound id, before or after the fault.
  EXPECT_EQ(id_in_error("{\"id\":\"c4\",\"tenant\":\"t\",\"text\":\"caf\xE9\"}"), "c4");
  EXPECT_EQ(id_in_error("{\"text\":\"caf\xE9\",\"tenant\":\"t\",\"id\":\"c5\"}"), "c5");
  EXPECT_EQ(id_in_error("{\"text\":\"a\tb\\\"\x01\",\"id\":\"c6\",\"tenant\":\"t\"}"), "c6");
  EXPECT_EQ(id_in_error("{\"id\":\"\xC3\xA9t\xE9\",\"tenant\":\"t\",\"text\":\"x\"}"), "");  // the fault is in the id
  EXPECT_EQ(id_in_error("{\"id\":\"c\t7\",\"tenant\":\"t\",\"text\":\"x\"}"), "");
  EXPECT_EQ(id_in_error("{\"text\":\"caf\xE9\",\"id\":\"c8\",}"), "");  // and no whole object
  // Cut short, the object is refused before any field is read: its id is known when it
  // is the first field, whole and sound.
  EXPECT_EQ(id_in_error(R"({"id":"c9","tenant":"t","text":"x","more":)"), "c9");
  EXPECT_EQ(id_in_error(R"({ "id" : "c\"9" , "tenant":"t")"), "c\"9");
  EXPECT_EQ(id_in_error(R"({"id":"c\q9","tenant":"t")"), "");  // a bad escape in the id
  EXPECT_EQ(id_in_error(R"({"id":"c9)"), "");                    // the id itself cut short
  EXPECT_EQ(id_in_error(R"({"tenant":"t","id":"c9")"), "");      // not first: not read
  EXPECT_EQ(id_in_error(R"({"id":"c9","tenant":"t","text":"x"})"), "(decoded)");
}

// Unknown fields are ignored whatever number they hold: ones too large for a double
// or a 64-bit integer too. A malformed number is still malformed JSON.
TEST(Decoder, IgnoresNumbersOfAnySizeInUnknownFieldsButNotMalformedOnes) {
  Decoder d;
  const Comment c = decode_ok(
      d, R"({"id":"a","tenant":"t","text":"x","big":123456789012345678901234567890,"huge":1e400,"list":[-0.5e-3, 18446744073709551616 ]})");
  EXPECT_EQ(c.text, "x");
  EXPECT_EQ(error_of(R"({"id":"a","tenant":"t","text":"x","n":01})"), DecodeErrorCode::not_json);
  EXPECT_EQ(error_of(R"({"id":"a","tenant":"t","text":"x","n":1.})"), DecodeErrorCode::not_json);
  EXPECT_EQ(error_of(R"({"id":"a","tenant":"t","text":"x","n":-})"), DecodeErrorCode::not_json);
}

// A contract field given twice would be read one way here and another way by whoever
// else reads the record ("text" once harmless, once a threat): refused.
TEST(Decoder, RefusesAContractFieldGivenTwice) {
  EXPECT_EQ(error_of(R"({"id":"a","tenant":"t","text":"I will hurt you","text":"hello"})"),
            DecodeErrorCode::invalid_field);
  EXPECT_EQ(error_of(R"({"id":"a","id":"b","tenant":"t","text":"x"})"), DecodeErrorCode::invalid_field);
  EXPECT_EQ(error_of(R"({"id":"a","tenant":"t","text":"x","author":"p","author":"q"})"),
            DecodeErrorCode::invalid_field);
  Decoder d;
  EXPECT_EQ(decode_ok(d, R"({"id":"a","tenant":"t","text":"x","extra":1,"extra":2})").id, "a");  // not ours
}

// Optional fields set to null are absent; a direction given must be one of the two.
TEST(Decoder, OptionalFieldsMayBeNullButNotEmptyWhereAValueIsRequired) {
  Decoder d;
  const Comment c = decode_ok(
      d, R"({"id":"a","tenant":"t","text":"x","author":null,"thread":null,"channel":null,"ts":null,"direction":null})");
  EXPECT_EQ(c.author, "");
  EXPECT_EQ(c.direction, Direction::inbound);
  EXPECT_EQ(error_of(R"({"id":"a","tenant":"t","text":"x","direction":""})"), DecodeErrorCode::invalid_field);
  EXPECT_EQ(error_of(R"({"id":null,"tenant":"t","text":"x"})"), DecodeErrorCode::id_not_string);
  // Only null itself: another word starting with 'n' is not JSON, as in an unknown field.
  for (const std::string field : {"author", "thread", "channel", "ts", "direction"})
    for (const std::string atom : {"nope", "nul", "nullx", "n"})
      EXPECT_EQ(error_of(R"({"id":"a","tenant":"t","text":"x",")" + field + "\":" + atom + "}"),
                DecodeErrorCode::not_json)
          << field << ": " << atom;
  DecoderOptions with_default_tenant;
  with_default_tenant.default_tenant = "t";
  EXPECT_EQ(error_of(R"({"id":"a","tenant":nonsense,"text":"x"})", with_default_tenant), DecodeErrorCode::not_json);
}
