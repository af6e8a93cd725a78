#include <gtest/gtest.h>

#include <algorithm>

#include "classify/state.h"
#include "classify/verdict_writer.h"
#include "common/time.h"
#include "test_util.h"

using namespace civicsift;
using civicsift::testing::TempDir;

TEST(Time, ParsesRfc3339AndDurations) {
  EXPECT_EQ(parse_timestamp_ms("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(parse_timestamp_ms("2026-10-05T14:03:00Z"), 1791208980000);
  EXPECT_EQ(parse_timestamp_ms("2026-10-05T10:03:00-04:00"), 1791208980000);
  EXPECT_EQ(parse_timestamp_ms("2026-10-05T14:03:00.250Z"), 1791208980250);
  EXPECT_EQ(parse_timestamp_ms("2026-10-05"), 1791158400000);
  EXPECT_TRUE(parse_timestamp_ms("2024-02-29").has_value());  // a leap day
  for (const char* bad : {"", "yesterday", "2026-13-01", "2026-10-05T25:00:00Z", "2026-10-05T14:03:00", "2026-10-05T14:03Z",
                          "2024-02-30", "2026-02-29", "2026-04-31", "1900-02-29"})
    EXPECT_FALSE(parse_timestamp_ms(bad).has_value()) << bad;
  EXPECT_EQ(parse_utc_offset_ms("-04:00"), -4 * 3'600'000);
  EXPECT_EQ(parse_utc_offset_ms("+05:30"), 330 * 60'000);
  EXPECT_EQ(parse_utc_offset_ms("Z"), 0);
  for (const char* bad : {"", "EST", "-4:00", "-04:60", "+24:00", "-0400"})
    EXPECT_FALSE(parse_utc_offset_ms(bad).has_value()) << bad;
  EXPECT_EQ(parse_duration_ms("24h"), 86'400'000);
  EXPECT_EQ(parse_duration_ms("7d"), 7 * 86'400'000LL);
  EXPECT_FALSE(parse_duration_ms("7 days").has_value());
}

namespace {
class StreamStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_.write("lexicons/l.yaml", "lexicon: l\nterms: [shit]\n");
    policy_ = civicsift::testing::compile_or_fail(dir_.write("t.yaml", R"yaml(
tenant: town
lexicons: [l]
repeat_offenders: {removals: 2, within: 7d, route: ban_review}
rules:
  - id: town.swears
    category: profanity
    clause: "Town 1"
    action: remove
    lexicon_terms: [l]
  - id: town.single-posts
    category: spam
    clause: "Town 6"
    action: remove
    duplicate_within: 1h
  - id: town.staff-repeats
    category: off_topic
    clause: "Town 9"
    action: review
    direction: outbound
    duplicate_within: 1h
)yaml"));
    ASSERT_TRUE(policy_);
  }
  Verdict post(StreamState& state, std::string_view author, std::string_view thread, std::string_view text,
               int64_t ts, Direction direction = Direction::inbound) {
    Comment c;
    c.id = "x";
    c.tenant = "town";
    c.author = author;
    c.thread = thread;
    c.text = text;
    c.ts_ms = ts;
    c.direction = direction;
    Verdict v;
    classify(*policy_, c, ctx_, v);
    state.apply({c.tenant, c.author, c.thread, static_cast<uint32_t>(text.size()), ts, direction}, v);
    return v;
  }
  // Fills a state bounded at 100 entries: 60 posts eight days old (beyond every window
  // of the test policy, the longest 7 days), then "early" and 39 more within a second of `now`.
  void fill_to_the_bound(StreamState& s, int64_t now) {
    for (int i = 0; i < 60; ++i) post(s, "stale" + std::to_string(i), "t", "hello", now - 8 * 24 * kHour);
    post(s, "early", "t", "same words", now - 1000);
    for (int i = 0; i < 39; ++i) post(s, "author" + std::to_string(i), "t", "hello", now - 999 + i);
    ASSERT_EQ(s.entries(), 100u);
  }
  TempDir dir_;
  std::shared_ptr<const CompiledPolicy> policy_;
  ScanContext ctx_;
  static constexpr int64_t kHour = 3'600'000;
};
}  // namespace

TEST_F(StreamStateTest, DuplicatesOfOneAuthorInOneThreadWithinTheWindow) {
  StreamState s;
  EXPECT_EQ(post(s, "a", "t", "Fix the road", kHour).action, Action::allow);
  const Verdict dup = post(s, "a", "t", "fix the ROAD!!", 2 * kHour);  // same skeleton
  EXPECT_EQ(dup.action, Action::remove);
  ASSERT_EQ(dup.matches.size(), 1u);
  EXPECT_EQ(dup.matches[0].end, 14u);                                    // the whole text
  EXPECT_EQ(post(s, "b", "t", "Fix the road", 2 * kHour).action, Action::allow);  // another author
  EXPECT_EQ(post(s, "a", "u", "Fix the road", 2 * kHour).action, Action::allow);  // another thread
  EXPECT_EQ(post(s, "a", "t", "Fix the road", 4 * kHour).action, Action::allow);  // outside the window
  EXPECT_EQ(post(s, "", "t", "Fix the road", 4 * kHour).action, Action::allow);   // no author: no state
  EXPECT_EQ(post(s, "", "t", "Fix the road", 4 * kHour).action, Action::allow);
  // A copy that arrives after a later one is a repeat all the same.
  EXPECT_EQ(post(s, "c", "t", "Fix the road", 3 * kHour).action, Action::allow);
  EXPECT_EQ(post(s, "c", "t", "Fix the road", 2 * kHour + kHour / 2).action, Action::remove);
}

TEST_F(StreamStateTest, ADuplicateIsTheSameTextUpToCaseSpacingAndClosingMarks) {
  StreamState s;
  EXPECT_EQ(post(s, "a", "t", "Fix the road on Main St", kHour).action, Action::allow);
  for (const char* same : {"fix the  road on main st", " FIX the road\non Main St?!", "Fix the road on Main St...",
                           "Fix the\xC2\xA0road on Main St", "Fix the ro\xE2\x80\x8B" "ad on Main St\xE3\x80\x80",
                           "Fix the road\xE2\x80\xA8on Main St", "Fix the ro\xC2\xAD" "ad on Main St",
                           "Fix the road on Main St\xE2\x80\x8E", "Fix the ro\xE2\x81\xA3" "ad on Main St",  // LRM, U+2063
                           "Fix the ro\xCD\x8F" "ad on Main St\xEF\xB8\x8F", "\xE2\x80\xAE" "Fix the road on Main St"})
    EXPECT_EQ(post(s, "a", "t", same, kHour).action, Action::remove) << same;
  for (const char* other : {"Fix the roads on Main St", "Fix the road, on Main St", "Fix the road on Main St :(",
                            "Fix the r\xC3\xB6" "ad on Main St"})  // a visible letter that is not ASCII counts
    EXPECT_EQ(post(s, "a", "t", other, kHour).action, Action::allow) << other;
  // Digits and letter runs count, which the skeleton folds.
  EXPECT_EQ(post(s, "a", "t", "The budget is $100", kHour).action, Action::allow);
  EXPECT_EQ(post(s, "a", "t", "The budget is $1000", kHour).action, Action::allow);
  EXPECT_EQ(post(s, "a", "t", "so good", kHour).action, Action::allow);
  EXPECT_EQ(post(s, "a", "t", "soooo good", kHour).action, Action::allow);
}

// Long texts are compared sixteen bytes at a time where they are plain: a doubled
// space, a tab, a capital, a Unicode space or a changed letter counts the same
// wherever it falls, at a block's first byte, its last or inside it.
TEST_F(StreamStateTest, ADuplicateOfALongTextIsFoundWhereverItsDifferencesFall) {
  const std::string original = "Please fix the pothole on Concession Road 4 near the old library, thanks";
  StreamState s;
  for (size_t at = 1; at < original.size(); ++at) {
    const std::string author = "a" + std::to_string(at);
    EXPECT_EQ(post(s, author, "t", original, kHour).action, Action::allow);
    std::string same = original;
    if (original[at] == ' ') {
      for (const char* space : {"  ", "\t", " \n ", "\xC2\xA0", " \xE2\x80\x8B"}) {
        same = original.substr(0, at) + space + original.substr(at + 1);
        EXPECT_EQ(post(s, author, "t", same, kHour).action, Action::remove) << same;
      }
    } else {
      same[at] = static_cast<char>(std::toupper(static_cast<unsigned char>(same[at])));
      if (same != original) {
        EXPECT_EQ(post(s, author, "t", same, kHour).action, Action::remove) << same;
      }
      same = original.substr(0, at) + "\xE2\x80\x8B" + original.substr(at);  // zero-width space: invisible
      EXPECT_EQ(post(s, author, "t", same, kHour).action, Action::remove) << same;
      std::string other = original;
      other[at] = other[at] == 'x' ? 'y' : 'x';
      EXPECT_EQ(post(s, author, "t", other, kHour).action, Action::allow) << other;
      if (original[at - 1] != ' ') {
        other = original.substr(0, at) + " " + original.substr(at);  // a word split in two
        EXPECT_EQ(post(s, author, "t", other, kHour).action, Action::allow) << other;
      }
    }
  }
}

TEST_F(StreamStateTest, AnEmptyTextIsNeverADuplicate) {
  StreamState s;
  for (const char* empty : {"", "", "  ", "?!", "...", "\n"})
    EXPECT_EQ(post(s, "a", "t", empty, kHour).action, Action::allow) << '"' << empty << '"';
}

TEST_F(StreamStateTest, RepeatOffendersGetTheBanReviewRoute) {
  StreamState s;
  const int64_t day = 24 * kHour;
  EXPECT_TRUE(post(s, "a", "t", "shit", day).routes.empty());
  EXPECT_EQ(post(s, "a", "t", "holy shit", 2 * day).routes, std::vector<std::string_view>{"ban_review"});
  EXPECT_TRUE(post(s, "b", "t", "shit", 2 * day).routes.empty());
  EXPECT_TRUE(post(s, "c", "t", "shit", day).routes.empty());
  EXPECT_TRUE(post(s, "c", "t", "shit again", 20 * day).routes.empty());  // outside the window
}

// A partition may hold comments out of the order they were posted in: removals count
// by their times (two within 7 days here), not by the order they arrive in.
TEST_F(StreamStateTest, RepeatOffendersCountRemovalsByTheirTime) {
  StreamState s;
  const int64_t day = 24 * kHour;
  const std::vector<std::string_view> ban{"ban_review"};
  EXPECT_TRUE(post(s, "a", "t", "shit", 10 * day).routes.empty());
  EXPECT_EQ(post(s, "a", "t", "shit again", 9 * day).routes, ban);  // dated before, within the window
  EXPECT_TRUE(post(s, "b", "t", "shit", 20 * day).routes.empty());
  EXPECT_TRUE(post(s, "b", "t", "shit again", 2 * day).routes.empty());  // 18 days before: not within
  EXPECT_EQ(post(s, "b", "t", "more shit", 15 * day).routes, ban);       // 5 days before the first

  // Dated more than a window before the author's newest removal: not counted.
  EXPECT_TRUE(post(s, "d", "t", "shit", 12 * day).routes.empty());
  EXPECT_TRUE(post(s, "d", "t", "shit again", 1 * day).routes.empty());
  EXPECT_TRUE(post(s, "d", "t", "more shit", 3 * day).routes.empty());

  // Removals on days 1, 3 and 5, in every order: whichever comes second or third is
  // within a window of one that came before, whatever their dates' order.
  std::vector<int64_t> days{1, 3, 5};
  do {
    StreamState fresh;
    std::vector<int64_t> routed;
    for (const int64_t d : days)
      if (!post(fresh, "c", "t", "shit on day " + std::to_string(d), d * day).routes.empty()) routed.push_back(d);
    EXPECT_EQ(routed, std::vector<int64_t>(days.begin() + 1, days.end())) << days[0] << "," << days[1] << "," << days[2];
  } while (std::next_permutation(days.begin(), days.end()));
}

TEST_F(StreamStateTest, MemoryStaysBounded) {
  StreamState s(1000);
  for (int i = 0; i < 10000; ++i) post(s, "author" + std::to_string(i), "t", "hello", kHour + i);
  EXPECT_LE(s.entries(), 1000u);
}

// A duplicate's match spans the whole text, so it starts first: the verdict lists it
// first, and redaction (which reads matches in text order) still covers every span.
TEST_F(StreamStateTest, ADuplicateMatchKeepsTheMatchesInTextOrder) {
  StreamState s;
  post(s, "a", "t", "well shit, again", kHour);
  const Verdict dup = post(s, "a", "t", "well shit, again", kHour + 1);
  ASSERT_EQ(dup.matches.size(), 2u);
  EXPECT_EQ(policy_->rule(dup.matches[0].rule).id, "town.single-posts");
  EXPECT_LT(dup.matches[0].start, dup.matches[1].start);
  EXPECT_EQ(redact("well shit, again", dup), "[spam]");
}

// A duplicate rule scoped to one direction applies to posts of that direction only.
TEST_F(StreamStateTest, ADuplicateRuleKeepsItsDirectionScope) {
  StreamState s;
  post(s, "staff", "t", "Office closed today", kHour, Direction::outbound);
  std::vector<std::string> fired;
  for (const Match& m : post(s, "staff", "t", "Office closed today", kHour + 1, Direction::outbound).matches)
    fired.push_back(policy_->rule(m.rule).id);
  EXPECT_EQ(fired, (std::vector<std::string>{"town.single-posts", "town.staff-repeats"}));
  post(s, "resident", "t", "Office closed today", kHour);
  fired.clear();
  for (const Match& m : post(s, "resident", "t", "Office closed today", kHour + 1).matches)
    fired.push_back(policy_->rule(m.rule).id);
  EXPECT_EQ(fired, std::vector<std::string>{"town.single-posts"});
}

// Authors and threads are free text (NUL included): "a\0" + "b" is not "a" + "\0b".
TEST_F(StreamStateTest, KeysOfDifferentAuthorsAndThreadsNeverCollide) {
  StreamState s;
  post(s, std::string_view("a\0", 2), "b", "hello there", kHour);
  EXPECT_EQ(post(s, "a", std::string_view("\0b", 2), "hello there", kHour + 1).action, Action::allow);
}

// Reaching the memory bound forgets only what no window can still use (here 7 days,
// the repeat-offender window), even before any duplicate was seen; and a post dated far
// in the future does not make everything look old.
TEST_F(StreamStateTest, TheBoundKeepsWhatAWindowStillNeeds) {
  StreamState s(100);
  const int64_t now = now_ms(), day = 24 * kHour;
  fill_to_the_bound(s, now);
  post(s, "time-traveller", "t", "hello", now + 1000 * day);  // the 101st: the bound applies
  EXPECT_EQ(s.entries(), 41u);  // the 60 stale ones went
  EXPECT_EQ(post(s, "early", "t", "same words", now).action, Action::remove) << "its first post was forgotten";
}

// A late post, dated up to a window before the newest, still meets the history a window
// older than itself: the bound keeps two windows.
TEST_F(StreamStateTest, TheBoundKeepsWhatALatePostStillReaches) {
  StreamState s(100);
  const int64_t now = now_ms(), day = 24 * kHour;
  for (int i = 0; i < 60; ++i) post(s, "stale" + std::to_string(i), "t", "hello", now - 15 * day);
  EXPECT_TRUE(post(s, "x", "t", "oh shit", now - 12 * day).routes.empty());  // a removal
  for (int i = 0; i < 45; ++i) post(s, "author" + std::to_string(i), "t", "hello", now - 999 + i);
  EXPECT_LE(s.entries(), 100u);
  // x's second removal, six days after the first and six days before the newest post.
  const Verdict late = post(s, "x", "u", "oh shit", now - 6 * day);
  EXPECT_EQ(late.routes, std::vector<std::string_view>{"ban_review"});
}

// The post that crosses the bound may come late (dated before others already applied):
// ages still count from the stream's newest post, so the stale entries go, not all of them.
TEST_F(StreamStateTest, ALatePostCrossingTheBoundForgetsOnlyWhatIsStale) {
  StreamState s(100);
  const int64_t now = now_ms(), day = 24 * kHour;
  fill_to_the_bound(s, now);
  post(s, "latecomer", "t", "hello", now - 6 * day);  // the 101st, dated before most
  EXPECT_EQ(s.entries(), 41u);  // the 60 stale ones went
  EXPECT_EQ(post(s, "early", "t", "same words", now).action, Action::remove) << "its first post was forgotten";
}

// A policy may hold nothing but duplicate-post rules: nothing to scan for, so no
// Hyperscan database (which cannot be empty), and duplicates are still found.
TEST(StreamStatePolicy, APolicyOfOnlyDuplicateRules) {
  TempDir dir;
  const auto policy = civicsift::testing::compile_or_fail(dir.write("d.yaml", R"yaml(
tenant: quiet
rules:
  - id: quiet.single-posts
    category: spam
    clause: "Q 1"
    action: remove
    duplicate_within: 1h
)yaml"),
                                                           CompileOptions{dir.path() / "cache"});
  ASSERT_TRUE(policy);
  EXPECT_EQ(policy->database(), nullptr);
  EXPECT_EQ(policy->database_bytes(), 0u);
  StreamState s;
  ScanContext ctx;
  for (const int64_t ts : {1000, 2000}) {
    Comment c;
    c.id = "x";
    c.tenant = "quiet";
    c.author = "a";
    c.text = "The same words";
    c.ts_ms = ts;
    Verdict v;
    classify(*policy, c, ctx, v);
    EXPECT_TRUE(v.matches.empty());
    s.apply({c.tenant, c.author, c.thread, static_cast<uint32_t>(c.text.size()), ts, c.direction}, v);
    EXPECT_EQ(v.action, ts == 1000 ? Action::allow : Action::remove);
  }
}
