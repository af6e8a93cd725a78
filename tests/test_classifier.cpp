#include <gtest/gtest.h>

#include "classify/validators.h"
#include "classify/verdict_writer.h"
#include "test_util.h"

using namespace civicsift;
using civicsift::testing::fired;
using civicsift::testing::TempDir;

namespace {
const char* kPolicy = R"(
tenant: town
lexicons: [swears]
thresholds: {review: 3, remove: 8}
allow: {phones: ["519-255-6100", "311"], domains: [town.ca]}
rules:
  - id: town.swears
    category: profanity
    clause: "Town 2.1"
    action: remove
    lexicon_terms: [swears]
  - id: town.insult
    category: harassment
    clause: "Town 2.2"
    action: remove
    terms: ["you idiot", ass]
  - id: town.threat
    category: threat
    clause: "Town 2.10"
    action: escalate
    terms: ['(i ll|i will) (kill|hurt) you']
  - id: town.pub
    category: off_topic
    clause: "Town 9.4"
    action: allow
    terms: ["white hart inn"]
  - id: town.phone
    category: pii
    clause: "Town 2.3"
    action: remove
    regex: ['(?:\+?1[\s.-]?)?\(?\b\d{3}\)?[\s.-]?\d{3}[\s.-]?\d{4}(?:\b|x|ext)']
    validate: phone
  - id: town.card
    category: pii
    clause: "Town 2.4"
    action: remove
    regex: ['\b\d(?:[ -]?\d){12,18}\b']
    validate: luhn
  - id: town.link
    category: commercial
    clause: "Town 2.5"
    action: review
    regex: ['\b(?:https?://)?(?:[a-z0-9-]+\.)+(?:com|ca|net)\b']
    validate: domain
  - id: town.email
    category: pii
    clause: "Town 2.7"
    action: remove
    regex: ['(?:\w|[\x80-\xbf]) ?(?:@|\xef\xbc\xa0) ?[a-z0-9][a-z0-9.-]*\.(?:com|ca)\b']
    validate: domain
  - id: town.email_spelled
    category: pii
    clause: "Town 2.9"
    action: remove
    terms: ['at (gmail|yahoo) dot (com|ca)']
    regex: ['(\[at\]|\(at\))\s*[a-z0-9-]+(\s*(\[dot\]|\sdot\s)\s*|\.)(com|ca)\b']
  - id: town.short_link
    category: spam
    clause: "Town 2.8"
    action: review
    regex: ['[a-z0-9]\.(?:shop|ca)\b']
    validate: domain
  - id: town.clutter
    category: spam
    clause: "Town 2.6"
    action: review
    regex: ['^\s*(me\s+too|\+1)[.!]*$']
  - id: town.council
    category: political
    clause: "Town 5.5"
    action: allow
    routes: [council]
    terms: [mayor, council]
  - id: town.staff_opinion
    category: political
    clause: "Town 4.6"
    action: review
    direction: outbound
    terms: ["in my opinion"]
  - id: town.mild_a
    category: off_topic
    clause: "Town 9.1"
    action: allow
    score: 2
    terms: [crypto]
  - id: town.mild_b
    category: spam
    clause: "Town 9.2"
    action: allow
    score: 2
    terms: [giveaway]
  - id: town.short_code
    category: spam
    clause: "Town 9.3"
    action: review
    terms: ['to (3|4|5|6|7|8|9)((0|1|2|3|4|5|6|7|8|9))?((0|1|2|3|4|5|6|7|8|9))?((0|1|2|3|4|5|6|7|8|9))?((0|1|2|3|4|5|6|7|8|9))?((0|1|2|3|4|5|6|7|8|9))?']
    validate: short_code
)";
const char* kLexicon = "lexicon: swears\nterms: [fuck, shit, bitch, \"hell\"]\nallow: [\"hell of a\", \"hells kitchen\"]\n";

class ClassifierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_.write("lexicons/swears.yaml", kLexicon);
    policy_ = civicsift::testing::compile_or_fail(dir_.write("town.yaml", kPolicy));
    ASSERT_TRUE(policy_);
  }
  std::vector<std::string> fire(std::string_view text, Direction d = Direction::inbound) {
    return fired(*policy_, text, d);
  }
  Verdict verdict(std::string_view text, Direction d = Direction::inbound) {
    Verdict v;
    fired(*policy_, text, d, &v);
    return v;
  }
  TempDir dir_;
  std::shared_ptr<const CompiledPolicy> policy_;
};

const std::vector<std::string> kSwears{"town.swears"};
const std::vector<std::string> kNone{};
}  // namespace

TEST_F(ClassifierTest, MaskedVulgarityIsCaught) {
  for (const char* text : {"fuck", "FUCK off", "f*ck", "f**k", "fu*k", "f.u.c.k", "f u c k", "fuuuuuck", "sh1t",
                           "$hit", "sh!t", "b1tch", "\xEF\xBD\x86\xEF\xBD\x95\xEF\xBD\x83\xEF\xBD\x8B",
                           "fu\xE2\x80\x8B" "ck", "f\xC3\xBC" "ck", "\xD1\x95hit"})
    EXPECT_EQ(fire(text), kSwears) << text;
}

// A masked word of a template or phrase reads as the one word of the policy's terms it
// spells; "h*rt" spells both "hurt" and "hart" (another rule's), so it reads as neither.
TEST_F(ClassifierTest, MaskedWordsOfPhrasesAreWrittenOut) {
  const std::vector<std::string> kThreat{"town.threat"};
  EXPECT_EQ(fire("I'll k*ll you"), kThreat);
  EXPECT_EQ(fire("i will k!ll you"), kThreat);  // leet, no mask: as before
  EXPECT_EQ(fire("I'll h*rt you"), kNone);
  // Allow phrases read the written-out words too: "h*ll of a" is "hell of a".
  EXPECT_EQ(fire("what a h*ll of a job"), kNone);
  EXPECT_EQ(fire("h*ll no"), kSwears);
  EXPECT_EQ(fire("I'll k*ll you, f*ck"), (std::vector<std::string>{"town.threat", "town.swears"}));
  const Verdict v = verdict("so I'll k*ll you");
  ASSERT_EQ(v.matches.size(), 1u);
  EXPECT_EQ(v.matches[0].start, 3u);  // source bytes of the phrase, the masked word's included
  EXPECT_EQ(v.matches[0].end, 16u);
}

// A trailing "$$" reads as a double s; a single trailing '$' stays punctuation.
TEST_F(ClassifierTest, TrailingDoubleDollarIsADoubleS) {
  EXPECT_EQ(fire("kiss my a$$"), std::vector<std::string>{"town.insult"});
  EXPECT_EQ(fire("kiss my a$$!"), std::vector<std::string>{"town.insult"});
  EXPECT_EQ(fire("it costs 5$$"), kNone);
  EXPECT_EQ(fire("a$ a time"), kNone);
}

TEST_F(ClassifierTest, NoScunthorpeProblem) {
  for (const char* text : {"Scunthorpe", "assess the class", "a cocktail in Sussex", "the therapist", "Dickens",
                           "shiitake mushrooms", "hello", "shell", "passage", "I'm going to smash it", "as you say"})
    EXPECT_EQ(fire(text), kNone) << text;
}

TEST_F(ClassifierTest, AllowPhrasesCancelOnlyTheMatchesTheyCover) {
  EXPECT_EQ(fire("hell of a job on the roads"), kNone);
  EXPECT_EQ(fire("hell no"), kSwears);
  EXPECT_EQ(fire("hell of a job, what the hell"), kSwears);
}

TEST_F(ClassifierTest, RepeatedLettersMustMatchTheTermOrBeEmphatic) {
  EXPECT_EQ(fire("you ass"), std::vector<std::string>{"town.insult"});
  EXPECT_EQ(fire("you asssss"), std::vector<std::string>{"town.insult"});
  EXPECT_EQ(fire("as if"), kNone);
  EXPECT_EQ(fire("you idiot"), std::vector<std::string>{"town.insult"});
  EXPECT_EQ(fire("you idiiiiot!!"), std::vector<std::string>{"town.insult"});
}

TEST_F(ClassifierTest, SpansAreByteOffsetsIntoTheOriginalText) {
  const std::string text = "Well, F.U.C.K that \xC3\xA9t\xC3\xA9 sh1t";
  const Verdict v = verdict(text);
  ASSERT_EQ(v.matches.size(), 2u);
  EXPECT_EQ(text.substr(v.matches[0].start, v.matches[0].end - v.matches[0].start), "F.U.C.K");
  EXPECT_EQ(text.substr(v.matches[1].start, v.matches[1].end - v.matches[1].start), "sh1t");
}

TEST_F(ClassifierTest, PhoneNumbersInAllSpellingsButNotAllowedOnes) {
  for (const char* text : {"call 519-555-0147", "call (519) 555-0147", "+1 519 555 0147", "519.555.0147",
                           "1-519-555-0147"})
    EXPECT_EQ(fire(text), std::vector<std::string>{"town.phone"}) << text;
  EXPECT_EQ(fire("the city is at 519-255-6100"), kNone);
  EXPECT_EQ(fire("dial 311"), kNone);
  EXPECT_EQ(fire("order 123-456-7890"), kNone);  // area code cannot start with 1
  // Toll-free lines are organisations' (helplines, agencies), not personal information.
  for (const char* text : {"call 1-800-668-6868", "call 888-555-0147", "(833) 456-4566"})
    EXPECT_EQ(fire(text), kNone) << text;
  EXPECT_EQ(fire("call 822-555-0147"), std::vector<std::string>{"town.phone"});  // 822 is not toll-free
  // A regex that reads on into an extension ("x22", "ext22") spans the number alone.
  for (const char* text : {"call 519-555-0147x22", "call 519-555-0147ext22"}) {
    const Verdict v = verdict(text);
    ASSERT_EQ(v.matches.size(), 1u) << text;
    EXPECT_EQ(std::string_view(text).substr(v.matches[0].start, v.matches[0].end - v.matches[0].start),
              "519-555-0147");
  }
}

// A validator checks term matches too, on their source bytes: the skeleton reads a
// repeated digit once, so only the source can tell a short code from a street number.
TEST_F(ClassifierTest, TermMatchesAreValidatedOnTheirSourceText) {
  const std::vector<std::string> kShortCode{"town.short_code"};
  EXPECT_EQ(fire("txt WIN to 80082 now"), kShortCode);
  EXPECT_EQ(fire("txt WIN to 82277 now"), kShortCode);  // skeleton "to 827"
  EXPECT_EQ(fire("txt WIN to 8007"), kShortCode);
  EXPECT_EQ(fire("txt WIN to 33333"), kShortCode);  // skeleton "to 3"
  EXPECT_EQ(fire("txt WIN to 444555"), kShortCode);  // skeleton "to 45"
  EXPECT_EQ(fire("I replied to 3 people"), kNone);
  EXPECT_EQ(fire("it went to 33 of them"), kNone);
  EXPECT_EQ(fire("attendance went up to 5000 people"), kNone);  // a round count
  EXPECT_EQ(fire("taxes went from $2705 to $5458"), kNone);      // an amount
  EXPECT_EQ(fire("taxes went from $2705 to $ 5458"), kNone);
  EXPECT_EQ(fire("call 1-800-222-8477 with a tip"), kNone);  // "222" reads "2", but a phone's group
  EXPECT_EQ(fire("call 1 800 222 8477 with a tip"), kNone);
  EXPECT_TRUE(validators::short_code("2 80082"));  // the packs' "2" for "to"
  EXPECT_FALSE(validators::short_code("222 8477"));
  EXPECT_EQ(fire("Bus 4 goes to 530 Ouellette"), kNone);
  EXPECT_EQ(fire("the bus goes to 533 Ouellette"), kNone);  // skeleton "to 53", source 3 digits
}

TEST_F(ClassifierTest, CardNumbersNeedLuhn) {
  EXPECT_EQ(fire("card 4111 1111 1111 1111"), std::vector<std::string>{"town.card"});
  EXPECT_EQ(fire("card 4111 1111 1111 1112"), kNone);
}

// A street address's name is not a word of the sentence around a number.
TEST(Validators, AStreetAddressIsANumberThenAName) {
  for (const char* address : {"1450 Ouellette Avenue", "23b Maple Leaf Cres", "1450 walker rd", "Unit 3, 45 Maple Lane",
                              "45 rue Principale", "100 Second Ave"})
    EXPECT_TRUE(validators::street_address(address)) << address;
  for (const char* sentence : {"7 on Main St", "401 to Walker Rd", "5 minute drive", "13 off the highway",
                               "2019 on Brock Road", "555 for road", "45 a.m. Road", "10 pm Street"})
    EXPECT_FALSE(validators::street_address(sentence)) << sentence;
}

// Nine digits that pass the sum but end in 000 are an amount, as French groups it.
TEST(Validators, NineDigitsEndingIn000AreAnAmountNotASin) {
  EXPECT_TRUE(validators::luhn("046 454 286"));
  EXPECT_FALSE(validators::luhn("125 000 000"));  // passes the sum
  EXPECT_TRUE(validators::luhn("4000 0000 0000 0002"));  // a card may end so
  EXPECT_FALSE(validators::luhn("119219814", " RR 0001 for a receipt"));  // a charity's number
  EXPECT_FALSE(validators::luhn("119219814", "RT0001"));
  EXPECT_TRUE(validators::luhn("119219814", " RRSP"));
  EXPECT_FALSE(validators::luhn("800 000 002"));                  // passes the sum; no SIN begins with 8
  EXPECT_FALSE(validators::luhn("0715 0745 0815 0845"));          // bus times, passes the sum
  EXPECT_FALSE(validators::luhn("9780306406107"));                // an ISBN, passes the sum
  EXPECT_TRUE(validators::luhn("8100 0000 0000 0002"));           // RuPay issues cards beginning 81
}

TEST_F(ClassifierTest, DomainsOutsideTheAllowListOnly) {
  EXPECT_EQ(fire("deals at https://cheap-pills.com/now"), std::vector<std::string>{"town.link"});
  EXPECT_EQ(fire("see www.town.ca/roads"), kNone);
  EXPECT_EQ(fire("see roads.town.ca"), kNone);
  // A pattern that matches from the last letter before '@' or the last dot still
  // covers the whole address: its span hides all of it, and the allow-list sees the
  // whole domain.
  const Verdict email = verdict("email me at john.smith-2+x@gmail.com please");
  const auto is_email = [&](const Match& m) { return policy_->rule(m.rule).id == "town.email"; };
  const auto found = std::find_if(email.matches.begin(), email.matches.end(), is_email);
  ASSERT_NE(found, email.matches.end());
  EXPECT_EQ(found->start, 12u);  // "john..."
  EXPECT_EQ(found->end, 36u);
  EXPECT_EQ(fire("write to clerk@town.ca"), kNone);
  // A full-width '＠' is an '@' to the allow-list as to the reader.
  EXPECT_EQ(fire("write to clerk\uFF20town.ca"), kNone);
  for (const std::string spaced : {"mail jane.doe @ gmail.com now", "mail jane.doe\uFF20gmail.com now"}) {
    const Verdict v = verdict(spaced);
    const auto email_match = std::find_if(v.matches.begin(), v.matches.end(), is_email);
    ASSERT_NE(email_match, v.matches.end()) << spaced;
    EXPECT_EQ(email_match->start, 5u) << spaced;  // "jane..."
    EXPECT_EQ(email_match->end, spaced.size() - 4) << spaced;
  }
  EXPECT_EQ(fire("see town.ca for hours"), kNone);
  // The host of an e-mail address is the address rule's to report, not a link rule's;
  // an address that rule does not know (.shop) is still a link.
  const std::vector<std::string> email_only{"town.email"};
  for (const std::string text : {"email me at john.smith@gmail.com please", "mail jane.doe @ gmail.com now",
                                 "mail jane.doe\uFF20gmail.com now"})
    EXPECT_EQ(fire(text), email_only) << text;
  EXPECT_EQ(fire("write to me@cheap-pills.shop"), std::vector<std::string>{"town.short_link"});
  EXPECT_EQ(fire("write to me@x.ca or see cheap-pills.com"), (std::vector<std::string>{"town.email", "town.link"}));
  const Verdict shop = verdict("buy at cheap-pills.shop now");
  ASSERT_EQ(shop.matches.size(), 1u);
  EXPECT_EQ(shop.matches[0].start, 7u);
  EXPECT_EQ(shop.matches[0].end, 23u);
  // A sentence run on after its full stop is no host; written as hosts are, it is.
  EXPECT_EQ(fire("Great event today.Shop local!"), kNone);
  EXPECT_EQ(fire("Order at Deals.shop or CHEAP.SHOP or http://x.Shop"),
            (std::vector<std::string>{"town.short_link", "town.short_link", "town.short_link"}));
  // A span found from the dot covers the link's scheme too: redaction hides all of it.
  const Verdict link = verdict("go to http://x.Shop");
  ASSERT_EQ(link.matches.size(), 1u);
  EXPECT_EQ(link.matches[0].start, 6u);
  EXPECT_EQ(link.matches[0].end, 19u);
}

// An address written out is found from its "at"; the span starts at the name before
// it, so redaction hides all of the address. Other spans are left as found.
TEST_F(ClassifierTest, AnAddressWrittenOutIsSpannedFromItsName) {
  for (const std::string text : {"reach me: jane.doe at gmail dot com", "reach me: jane.doe  AT Yahoo DOT ca",
                                 "reach me: jane.doe[at]gmail[dot]com", "reach me: jane.doe (at) yahoo dot com",
                                 "reach me: jane dot doe at gmail dot com", "reach me: jane[dot]doe[at]gmail[dot]com"}) {
    const Verdict v = verdict(text);
    ASSERT_EQ(v.matches.size(), 1u) << text;
    EXPECT_EQ(policy_->rule(v.matches[0].rule).id, "town.email_spelled") << text;
    EXPECT_EQ(v.matches[0].start, 10u) << text;
    EXPECT_EQ(v.matches[0].end, text.size()) << text;
    EXPECT_EQ(redact(text, v), "reach me: [pii]") << text;
  }
  // A name in another script is the name too, up to a space, Unicode's included.
  for (const std::string text : {"reach me: jan\xC3\xA9.doe@gmail.com", "\xC2\xA0\xC3\xA9lise@gmail.com"}) {
    const Verdict v = verdict(text);
    const auto email = std::find_if(v.matches.begin(), v.matches.end(),
                                    [&](const Match& m) { return policy_->rule(m.rule).id == "town.email"; });
    ASSERT_NE(email, v.matches.end()) << text;
    EXPECT_EQ(text.substr(0, email->start), text[0] == 'r' ? "reach me: " : "\xC2\xA0") << text;
  }
  const std::string at_line_start = "at gmail dot com";  // no name before it: the span stays
  const Verdict v = verdict(at_line_start);
  ASSERT_EQ(v.matches.size(), 1u);
  EXPECT_EQ(v.matches[0].start, 0u);
}

TEST_F(ClassifierTest, AnchorsMeanTheWholeComment) {
  EXPECT_EQ(fire("me too!"), std::vector<std::string>{"town.clutter"});
  EXPECT_EQ(fire("  +1  "), std::vector<std::string>{"town.clutter"});
  EXPECT_EQ(fire("me too, the ditch on 4th line floods"), kNone);
  EXPECT_EQ(fire("they said me too"), kNone);
  // Spaces pasted from phones and word processors count as spaces at either end:
  // no-break, em, ideographic, zero-width, and a line separator.
  EXPECT_EQ(fire("\xC2\xA0me too\xE3\x80\x80"), std::vector<std::string>{"town.clutter"});
  EXPECT_EQ(fire("\xE2\x80\x83\xE2\x80\x8B+1\xE2\x80\x8B\xE2\x80\xA8\n"), std::vector<std::string>{"town.clutter"});
  EXPECT_EQ(fire("\xC2\xA0me too, the ditch on 4th line floods"), kNone);
  EXPECT_EQ(fire("me too\xC2\xA0!"), kNone);  // '!' is content: the regex ends before the space
}

TEST_F(ClassifierTest, DirectionScopedRules) {
  EXPECT_EQ(fire("in my opinion the plan is late", Direction::outbound),
            std::vector<std::string>{"town.staff_opinion"});
  EXPECT_EQ(fire("in my opinion the plan is late", Direction::inbound), kNone);
}

TEST_F(ClassifierTest, VerdictAggregatesActionCategoriesRoutesAndScore) {
  const Verdict council = verdict("ask the mayor and council");
  EXPECT_EQ(council.action, Action::allow);
  EXPECT_EQ(council.routes, std::vector<std::string_view>{"council"});
  EXPECT_EQ(council.matches.size(), 2u);  // both terms, one rule

  const Verdict v = verdict("tell the mayor to f*ck off, call 519-555-0147");
  EXPECT_EQ(v.action, Action::remove);
  EXPECT_TRUE(v.has(Category::profanity));
  EXPECT_TRUE(v.has(Category::pii));
  EXPECT_TRUE(v.has(Category::political));
  EXPECT_EQ(v.routes, std::vector<std::string_view>{"council"});

  // Two allow rules scoring 2 each cross the review threshold of 3 together.
  EXPECT_EQ(verdict("crypto").action, Action::allow);
  EXPECT_EQ(verdict("crypto giveaway").action, Action::review);
}

TEST_F(ClassifierTest, HandlesNulEmptyAndHugeText) {
  EXPECT_EQ(fire(std::string_view("f\0ck", 4)), kNone);
  EXPECT_EQ(fire(std::string_view("shit\0", 5)), kSwears);
  EXPECT_EQ(fire(""), kNone);
  std::string big(2 << 20, 'a');
  big += " shit";
  EXPECT_EQ(fire(big), kSwears);
}

// Hits are recorded up to a cap that bounds memory. The comments here are padded with
// harmless hits: every 'x' fires a rule for outbound posts only, which an inbound
// comment cannot fire.
// Overlapping matches of one rule are one match spanning them all, so redaction hides
// the whole of an address that two of its patterns found in parts; a part an allow
// phrase covers does not widen it, and another rule's match stays its own.
TEST(ClassifierSpans, OverlappingMatchesOfARuleAreOneSpan) {
  TempDir dir;
  const auto policy = civicsift::testing::compile_or_fail(dir.write("t.yaml", R"(
tenant: town
rules:
  - id: town.address
    category: pii
    clause: "1"
    action: review
    regex: ['\bunit \d+, \d+ [a-z]+', '\b\d+ [a-z]+ lane\b', '\b\d+ [a-z]+ court\b']
    allow: ['45 maple court']
  - {id: town.lane, category: off_topic, clause: "2", action: review, terms: [maple lane]}
)"));
  ASSERT_TRUE(policy);
  Verdict v;
  const std::string text = "at Unit 3, 45 Maple Lane today";
  EXPECT_EQ(fired(*policy, text, Direction::inbound, &v), (std::vector<std::string>{"town.address", "town.lane"}));
  EXPECT_EQ(redact(text, v), "at [pii] today");
  const Match& address = v.matches[0];
  EXPECT_EQ(text.substr(address.start, address.end - address.start), "Unit 3, 45 Maple Lane");
  fired(*policy, "at Unit 3, 45 Maple Court today", Direction::inbound, &v);
  ASSERT_EQ(v.matches.size(), 1u);
  EXPECT_EQ(v.matches[0].end - v.matches[0].start, std::string("Unit 3, 45 Maple").size());
}

// An allow template of many spellings compiles to one regex, not a literal each: it
// still cancels what it covers, and only that.
TEST(ClassifierAllow, AnAllowTemplateOfManySpellingsCancelsWhatItCovers) {
  TempDir dir;
  const auto policy = civicsift::testing::compile_or_fail(dir.write("t.yaml", R"yaml(
tenant: town
rules:
  - id: town.threat
    category: threat
    clause: "1"
    action: escalate
    terms: ["(i ll|i will) find (you|u)"]
    allow: ["(i ll|i will|we ll|we will) find (you|u) (the|a|an|some|this|that|those|these|one|another|any) (info|link|links|form|forms|number|numbers|answer|answers)"]
)yaml"));
  ASSERT_TRUE(policy);
  for (const char* allowed : {"I'll find you the link tomorrow", "i will find u some forms", "I'll f1nd you that info"})
    EXPECT_EQ(fired(*policy, allowed), std::vector<std::string>{}) << allowed;
  for (const char* threat : {"I'll find you one day", "I will find you", "I'll find you the day you least expect"})
    EXPECT_EQ(fired(*policy, threat), std::vector<std::string>{"town.threat"}) << threat;
}

class ClassifierHitCap : public ::testing::Test {
 protected:
  void SetUp() override {
    policy = civicsift::testing::compile_or_fail(dir.write("t.yaml", R"(
tenant: town
rules:
  - {id: town.staff-x, category: off_topic, clause: "1", action: remove, direction: outbound, regex: ['x']}
  - {id: town.threat, category: threat, clause: "2", action: escalate, terms: [kill you]}
  - {id: town.swears, category: profanity, clause: "3", action: remove, terms: [fuck]}
  - {id: town.phone, category: pii, clause: "4", action: remove, regex: ['\b\d{3}-\d{3}-\d{4}\b']}
  - {id: town.sin, category: pii, clause: "5", action: remove, regex: ['\b\d{3} \d{3} \d{3}\b'], validate: luhn}
  - {id: town.hunt, category: threat, clause: "6", action: escalate, terms: ["(i ll|i will) hunt you"]}
)"));
    ASSERT_TRUE(policy);
  }
  TempDir dir;
  std::shared_ptr<const CompiledPolicy> policy;
};

// Padding must not hide what comes after it: past the cap the verdict is at least review.
TEST_F(ClassifierHitCap, ACommentPaddedPastTheHitCapGoesToReview) {
  Verdict v;
  EXPECT_EQ(fired(*policy, "xx I will kill you", Direction::inbound, &v), std::vector<std::string>{"town.threat"});
  EXPECT_FALSE(v.hits_capped);
  const std::string padded = std::string(70000, 'x') + " I will kill you";
  fired(*policy, padded, Direction::inbound, &v);
  EXPECT_TRUE(v.hits_capped);
  EXPECT_GE(v.action, Action::review);
  Comment c;
  c.id = "p";
  c.tenant = "town";
  c.text = padded;
  std::string out;
  write_verdict(out, c, v);
  EXPECT_NE(out.find("\"hits_capped\":true"), std::string::npos);
}

// Templates and regexes are found with their starts by a scan of their own, with a
// budget of its own: literals past the cap cannot crowd them out.
TEST_F(ClassifierHitCap, PaddingWithLiteralsCannotHideATemplateAfterIt) {
  std::string padded;
  for (int i = 0; i < 70000; ++i) padded += "fuck ";
  padded += "I will hunt you";
  Verdict v;
  const auto rules = fired(*policy, padded, Direction::inbound, &v);
  EXPECT_EQ(std::count(rules.begin(), rules.end(), "town.hunt"), 1);
  EXPECT_TRUE(v.hits_capped);
  EXPECT_EQ(v.action, Action::escalate);
}

// The phone numbers, postcodes and addresses of the digit database have a budget of
// their own: padding cannot keep them out of the verdict. Redaction cannot vouch for
// a text past the cap, so it shows none of it.
TEST_F(ClassifierHitCap, PaddingCannotHideAPhoneNumberOrLeaveItInTheRedactedText) {
  const std::string padded = std::string(70000, 'x') + " call 519-555-0123";
  Verdict v;
  EXPECT_EQ(fired(*policy, padded, Direction::inbound, &v), std::vector<std::string>{"town.phone"});
  EXPECT_TRUE(v.hits_capped);
  EXPECT_EQ(v.action, Action::remove);
  EXPECT_EQ(redact(padded, v), "[withheld: too many matches to redact]");
  Comment c;
  c.id = "p";
  c.tenant = "town";
  c.text = padded;
  std::string out;
  write_verdict(out, c, v, VerdictOptions{true});
  EXPECT_EQ(out.find("519-555"), std::string::npos);
}

// Numbers that fail their rule's check (here the Luhn sum of an insurance number) take
// nothing from that budget, however many there are.
TEST_F(ClassifierHitCap, NumbersThatFailTheirCheckCannotUseUpTheDigitBudget) {
  std::string padded;
  for (int i = 0; i < 25000; ++i) padded += "100 200 300 ";  // 75,000 runs that fail Luhn
  padded += "call 519-555-0123";
  Verdict v;
  EXPECT_EQ(fired(*policy, padded, Direction::inbound, &v), std::vector<std::string>{"town.phone"});
  EXPECT_FALSE(v.hits_capped);
  EXPECT_EQ(fired(*policy, "046 454 286 and 100 200 300"), std::vector<std::string>{"town.sin"});  // one passes
}

// The cap is exact (a comment of exactly as many hits as it allows keeps them all)
// and masked spellings, found after the scan, count against it too.
TEST_F(ClassifierHitCap, TheCapIsExactAndMaskedSpellingsCountAgainstIt) {
  constexpr size_t kCap = 1 << 16;
  Verdict v;
  fired(*policy, std::string(kCap, 'x'), Direction::inbound, &v);
  EXPECT_FALSE(v.hits_capped);
  fired(*policy, std::string(kCap + 1, 'x'), Direction::inbound, &v);
  EXPECT_TRUE(v.hits_capped);

  EXPECT_EQ(fired(*policy, std::string(kCap - 1, 'x') + " f*ck", Direction::inbound, &v),
            std::vector<std::string>{"town.swears"});
  EXPECT_FALSE(v.hits_capped);
  fired(*policy, std::string(kCap, 'x') + " f*ck", Direction::inbound, &v);
  EXPECT_TRUE(v.hits_capped);
  EXPECT_GE(v.action, Action::review);

  std::string masked;
  for (size_t i = 0; i <= kCap; ++i) masked += "f*ck ";
  fired(*policy, masked, Direction::inbound, &v);
  EXPECT_EQ(v.matches.size(), kCap);
  EXPECT_TRUE(v.hits_capped);
}


// Databases laid out at one address, as an allocator may place a reloaded policy's
// where a freed one's was (a test allocator that hands out one arena while it is free).
namespace {
alignas(64) unsigned char g_arena[16 << 20];
bool g_arena_in_use = false;
void* arena_alloc(size_t n) {
  if (g_arena_in_use || n > sizeof g_arena) return std::malloc(n);
  g_arena_in_use = true;
  return g_arena;
}
void arena_free(void* p) {
  if (p == g_arena) g_arena_in_use = false;
  else std::free(p);
}
}  // namespace

// A worker's scan context outlives policy snapshots (reloads). A new policy whose
// database sits where a freed one's was must still get a scratch space of its own
// size: taken for the old one, its scans failed ("hs_scan failed").
TEST(ScanContextReuse, APolicyWhoseDatabaseSitsWhereAFreedOnesWasGetsItsOwnScratch) {
  ASSERT_EQ(hs_set_database_allocator(arena_alloc, arena_free), HS_SUCCESS);
  struct RestoreAllocator {
    ~RestoreAllocator() { hs_set_database_allocator(nullptr, nullptr); }
  } restore;  // also when an assertion returns early
  TempDir dir;
  ScanContext ctx;
  Comment comment;
  comment.id = "1";
  comment.tenant = "town";
  comment.text = "abbbbbbbbbbbbbbbbc word 7123x and a zzqx";
  const std::string small =
      "tenant: town\nname: Town\nrules:\n  - {id: town.a, category: spam, clause: X, action: review, terms: [zzqx]}\n";
  std::string large = "tenant: town\nname: Town\nrules:\n";
  for (int r = 0; r < 24; ++r)
    large += "  - {id: town.r" + std::to_string(r) + ", category: spam, clause: X, action: review, regex: ['(a|b)\\w{" +
             std::to_string(r + 2) + ",}(c|d)\\s+\\w+']}\n";
  const void* small_db = nullptr;
  {
    auto policy = civicsift::testing::compile_or_fail(dir.write("town.yaml", small));
    ASSERT_TRUE(policy);
    small_db = policy->database();
    Verdict v;
    classify(*policy, comment, ctx, v);
  }
  auto policy = civicsift::testing::compile_or_fail(dir.write("town.yaml", large));
  ASSERT_TRUE(policy);
  const bool same_place = policy->database() == small_db;
  Verdict v;
  EXPECT_NO_THROW(classify(*policy, comment, ctx, v));
  EXPECT_TRUE(same_place) << "the test allocator did not place the second database where the first was";
}
