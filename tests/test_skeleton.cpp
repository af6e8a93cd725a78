#include <gtest/gtest.h>

#include <cctype>

#include "text/skeleton.h"

using civicsift::text::build_skeleton;
using civicsift::text::Skeleton;
using civicsift::text::term_skeleton;

namespace {
std::string skel(std::string_view s) {
  Skeleton sk;
  build_skeleton(s, sk);
  return std::string(sk.view());
}

// The source bytes a skeleton word came from, through source_begin.
std::string source_of_word(const std::string& src, std::string_view word) {
  Skeleton sk;
  build_skeleton(src, sk);
  const size_t at = sk.view().find(" " + std::string(word) + " ") + 1;
  return src.substr(sk.source_begin[at], sk.source_begin[at + word.size()] - sk.source_begin[at]);
}
}  // namespace

TEST(Skeleton, LowerCasesAndFramesWordsWithSpaces) {
  EXPECT_EQ(skel("Hello, World!"), " helo world ");
  EXPECT_EQ(skel(""), "  ");
  EXPECT_EQ(skel("   ...  "), "  ");
}

// Buffers are reused from one comment to the next, but one huge comment does not keep
// a thread's megabytes for good: the next small one gives them back.
TEST(Skeleton, AHugeCommentsBuffersAreGivenBackByTheNextSmallOne) {
  Skeleton sk;
  std::string huge;
  while (huge.size() < (8u << 20)) huge += "word ";
  build_skeleton(huge, sk);
  ASSERT_GE(sk.run_length.capacity(), 8u << 20);
  build_skeleton("a short comment", sk);
  EXPECT_EQ(sk.view(), " a short coment ");
  EXPECT_LT(sk.run_length.capacity(), 1u << 20);
  EXPECT_LT(sk.source_begin.capacity(), 1u << 20);
  EXPECT_LT(sk.bytes.capacity(), 1u << 20);
}

TEST(Skeleton, CollapsesRepeatsAndRemembersRunLengths) {
  Skeleton sk;
  build_skeleton("fuuuuck", sk);
  EXPECT_EQ(sk.view(), " fuck ");
  EXPECT_EQ(sk.run_length[2], 4);  // f, uuuu, c, k
  std::vector<uint16_t> runs;
  EXPECT_EQ(term_skeleton("ass", &runs), "as");
  EXPECT_EQ(runs, (std::vector<uint16_t>{1, 2}));
}

TEST(Skeleton, MapsLeetInsideWordsButKeepsNumbers) {
  EXPECT_EQ(skel("sh1t b1tch a55 $hit"), " shit bitch as shit ");
  EXPECT_EQ(skel("call 519 555 0147"), " cal 519 5 0147 ");
  EXPECT_EQ(skel("sh!t"), " shit ");
  EXPECT_EQ(skel("wow!"), " wow ");  // trailing punctuation is not leet
  // A closing "$$" is a double s, with the letter-like symbols right before it.
  EXPECT_EQ(skel("a$$ @$$ p!$$ dumb@$$ a$$! @$$!!"), " as as pis dumbas as as ");
  EXPECT_EQ(skel("$$$ cash$ 5$ 45$$"), " cash 5 45 ");  // no letters, or one '$': punctuation
}

// A number with a unit or multiplier after it is a quantity, not leet: budgets and
// ridership figures are not slurs ("900k" is not "gook").
TEST(Skeleton, ReadsQuantitiesAsNumbers) {
  EXPECT_EQ(skel("900K on consultants, 600k riders, 45s, 100km, $5k"), " 90k on consultants 60k riders 45s 10km 5k ");
  // One digit, or letters that are no unit, still read as leet.
  EXPECT_EQ(skel("5hit 455hole b00bs 817ch 455hat"), " shit ashole bobs bitch ashat ");
}

TEST(Skeleton, ReadsCodesAsCodesNotLeet) {
  // Postal codes: both halves side by side, or written as one word, in either case.
  EXPECT_EQ(skel("N9A 4S5"), " n9a 4s5 ");
  EXPECT_EQ(skel("near l4l 1a1, Vaughan"), " near l4l 1a1 vaughan ");
  EXPECT_EQ(skel("N9A4S5"), " n9a4s5 ");
  // Up to three spaces or hyphens between the halves, as the packs' regexes allow.
  EXPECT_EQ(skel("Vaughan ON L4L-1A1"), " vaughan on l4l 1a1 ");
  EXPECT_EQ(skel("N9A  4S5"), " n9a 4s5 ");
  EXPECT_EQ(skel("N9A - 4S5"), " n9a 4s5 ");
  // Alone, half a postal code is just as likely leet; and no postal code holds an F.
  EXPECT_EQ(skel("4S5 today"), " as today ");
  EXPECT_EQ(skel("f4g 1a1").substr(0, 5), " fag ");
  // Upper-case names with a number after them: routes, highways, models.
  EXPECT_EQ(skel("Bus WO6 and the QEW401"), " bus wo6 and the qew401 ");
  // Leet in lower or mixed case, or with digits inside the word, still reads.
  EXPECT_EQ(skel("wo6 Wo6 a55 SH1T F4GOT"), " wog wog as shit fagot ");
}

TEST(Skeleton, KeepsGrawlixMasksInsideWords) {
  EXPECT_EQ(skel("f*ck f**k sh#t f^ck"), " f*ck f*k sh*t f*ck ");
  // Letter-like symbols among masks are masks too, except one that opens the word.
  EXPECT_EQ(skel("f@#k f$%k $#!t"), " f*k f*k s*t ");
  EXPECT_EQ(skel("#hashtag *note*"), " hashtag note ");
  // Before a digit '#' is a number sign: "No#5" is item 5, not "no*s".
  EXPECT_EQ(skel("No#5 CH#7 #1"), " no 5 ch 7 1 ");
  EXPECT_EQ(skel("b#7ch p#55y"), " b*tch p*sy ");  // a mask before leet inside a word
}

TEST(Skeleton, JoinsLettersSpelledOneByOne) {
  EXPECT_EQ(skel("f.u.c.k"), " fuck ");
  EXPECT_EQ(skel("f u c k you"), " fuck you ");
  EXPECT_EQ(skel("f-u-c-k"), " fuck ");
  EXPECT_EQ(skel("a b"), " a b ");      // two letters are not a spelled word
  EXPECT_EQ(skel("i f u c k"), " i fuck ");
  EXPECT_EQ(skel("u r a loser"), " u r a loser ");  // text speak, not a spelled word
  EXPECT_EQ(skel("s h i t"), " shit ");
}

TEST(Skeleton, FoldsUnicodeEvasions) {
  EXPECT_EQ(skel("\xEF\xBD\x86\xEF\xBD\x95\xEF\xBD\x83\xEF\xBD\x8B"), " fuck ");  // full-width
  EXPECT_EQ(skel("fu\xE2\x80\x8B" "ck"), " fuck ");                               // zero-width space
  EXPECT_EQ(skel("f\xC3\xBC" "ck"), " fuck ");                                     // u with diaeresis
  EXPECT_EQ(skel("u\xCC\x88"), " u ");                                             // combining mark
  EXPECT_EQ(skel("\xD1\x81\xD0\xBE\xD1\x81k"), " cock ");                          // Cyrillic look-alikes
  EXPECT_EQ(skel("ni\xC9\xA1\xC9\xA1" "er"), " niger ");  // Latin script g (U+0261): "gg" is one run
  EXPECT_EQ(skel("s\xD2\xBBit \xD3\x8Fie \xD4\x9Dhore"), " shit lie whore ");    // Cyrillic shha, palochka, we
  EXPECT_EQ(skel("\xEA\x9C\xB0\xE1\xB4\x9C\xE1\xB4\x84\xE1\xB4\x8B \xCA\x8F\xE1\xB4\x8F\xE1\xB4\x9C"),
            " fuck you ");                                                                // small capitals
  EXPECT_EQ(skel("\xF0\x9F\x85\xB5\xF0\x9F\x86\x84 \xF0\x9F\x85\x95\xF0\x9F\x85\xA4 \xE2\x92\xA1\xE2\x92\xB0"),
            " fu fu fu ");  // negative squared, negative circled and parenthesised letters
  EXPECT_EQ(skel("c\xC3\xA2lisse"), " calise ");                                   // French accents
  // Look-alikes with an accent fold as the look-alike does: Cyrillic yi, Greek upsilon
  // and omicron with tonos.
  EXPECT_EQ(skel("sh\xD1\x97t f\xCF\x8D" "ck wh\xCF\x8Cre"), " shit fuck whore ");
  // Hooked f, lunate sigma, mu, Armenian seh, and the syllabics of "fancy text".
  EXPECT_EQ(skel("\xC6\x92uck fu\xCF\xB2k c\xCE\xBCnt f\xD5\xBD" "ck"), " fuck fuck cunt fuck ");
  EXPECT_EQ(skel("\xE1\x96\xB4\xE1\x91\x8C\xE1\x91\x95K"), " fuck ");
  EXPECT_EQ(skel("\xF0\x9F\x98\x80 ok"), " ok ");                                  // emoji separates
}

TEST(Skeleton, MapsEverySkeletonByteBackToSource) {
  EXPECT_EQ(skel("What the F.U.C.K!"), " what the fuck ");
  // The space after a word records where the word ends in the source.
  EXPECT_EQ(source_of_word("What the F.U.C.K!", "fuck"), "F.U.C.K");
}

// A combining mark is part of the letter before it, the last one of a word too: the
// span covers it, so redaction leaves no stray accent behind.
TEST(Skeleton, AWordEndsAfterTheCombiningMarksOnItsLastLetter) {
  const std::string src = "you sh\xCC\x81i\xCC\x88t\xCC\x81\xCC\x88 there";
  EXPECT_EQ(skel(src), " you shit there ");
  EXPECT_EQ(source_of_word(src, "shit"), "sh\xCC\x81i\xCC\x88t\xCC\x81\xCC\x88");
  // A mark after a separator belongs to no word.
  EXPECT_EQ(skel("a, \xCC\x81" "bc"), " a bc ");
}

TEST(Skeleton, SurvivesInvalidUtf8AndControlBytes) {
  EXPECT_EQ(skel(std::string("ab\xC3(cd\xFF\x00" "ef", 10)), " ab cd ef ");
}

TEST(Skeleton, BuildsAfterAPrefixAndReusesBuffers) {
  Skeleton sk;
  sk.bytes = "raw\n";
  sk.offset = 4;
  build_skeleton("Hello there", sk);
  EXPECT_EQ(sk.bytes.substr(0, 4), "raw\n");
  EXPECT_EQ(sk.view(), " helo there ");
  sk.offset = 0;
  build_skeleton("a", sk);  // shorter input after a longer one
  EXPECT_EQ(sk.view(), " a ");
  const std::string big(3 << 20, 'x');
  build_skeleton(big, sk);
  EXPECT_EQ(sk.size, 3u);
  build_skeleton("ok", sk);  // memory is given back after a huge comment
  EXPECT_LT(sk.run_length.size(), 1u << 20);
}

TEST(Skeleton, SpelledLettersBeforeAPlainWord) {
  EXPECT_EQ(skel("f u c k off"), " fuck of ");
  EXPECT_EQ(skel("x y hello"), " x y helo ");
  EXPECT_EQ(skel("I said hello"), " i said helo ");
}

// Plain words are read sixteen bytes at a time: lengths and repeats around the block
// edges, and words that reach the end of the input, map back byte for byte.
TEST(Skeleton, WordsAcrossBlockEdgesMapBackByteForByte) {
  for (size_t length : {2u, 15u, 16u, 17u, 31u, 32u, 33u, 100u}) {
    std::string word;
    for (size_t i = 0; i < length; ++i) word += static_cast<char>((i % 2 ? 'A' : 'a') + i % 26);  // aBcD...: no repeats
    for (const std::string& src : {word, "x, " + word + " ok", word + "!"}) {
      Skeleton sk;
      build_skeleton(src, sk);
      const size_t at = src.find(word);
      const size_t s = sk.view().find(civicsift::text::term_skeleton(word));
      ASSERT_NE(s, std::string_view::npos) << src;
      for (size_t i = 0; i < length; ++i) {
        EXPECT_EQ(sk.source_begin[s + i], at + i) << src;
        EXPECT_EQ(sk.run_length[s + i], 1) << src;
      }
      EXPECT_EQ(sk.view()[s + length], ' ');
      EXPECT_EQ(sk.source_begin[s + length], at + length) << src;  // where the word ends
    }
  }
}

// Runs of simple words are taken a block at a time; whatever breaks a block (a word of
// one letter, a repeat, two spaces, punctuation) must give the same skeleton as word by word.
TEST(Skeleton, RunsOfSimpleWordsMapBackByteForByte) {
  const std::string src = "The Snow on the sports fields is gone this morning thanks to the crew";
  Skeleton sk;
  build_skeleton(src, sk);
  std::string lower = src;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  ASSERT_EQ(sk.view(), " " + lower + " ");
  for (size_t i = 0; i < src.size(); ++i) {
    EXPECT_EQ(sk.source_begin[i + 1], i);
    EXPECT_EQ(sk.run_length[i + 1], 1);
  }
  EXPECT_EQ(sk.source_begin[src.size() + 1], src.size());  // where the last word ends

  // A block stopped by a repeat still gives the words before it, which map back byte
  // for byte too; the word with the repeat is read on its own.
  const std::string partial = "the snow on the wall was high";
  build_skeleton(partial, sk);
  ASSERT_EQ(sk.view(), " the snow on the wal was high ");
  const size_t wall = partial.find("wall");
  for (size_t i = 0; i < wall; ++i) EXPECT_EQ(sk.source_begin[i + 1], i) << i;
  EXPECT_EQ(sk.source_begin[wall + 3], wall + 2);  // the l run
  EXPECT_EQ(sk.run_length[wall + 3], 2);
  EXPECT_EQ(sk.source_begin[wall + 4], wall + 4);  // where "wall" ends

  EXPECT_EQ(skel("we saw a big dog on the road to the park"), " we saw a big dog on the road to the park ");
  EXPECT_EQ(skel("f u c k the snow on the road today"), " fuck the snow on the road today ");
  EXPECT_EQ(skel("the wall is tall and the street is green"), " the wal is tal and the stret is gren ");
  EXPECT_EQ(skel("the snow  on the road,  today is  fine"), " the snow on the road today is fine ");
  EXPECT_EQ(skel("our roads are bad b1tch sh!t the end"), " our roads are bad bitch shit the end ");
  EXPECT_EQ(skel("snow on roads \xC3\xA9t\xC3\xA9 today"), " snow on roads ete today ");
}

TEST(Skeleton, RepeatsAcrossBlockEdgesCollapseIntoOneRun) {
  Skeleton sk;
  const std::string src = "go" + std::string(14, 'o') + "OOal " + std::string(40, 'z') + "s";  // the o run spans two blocks
  build_skeleton(src, sk);
  ASSERT_EQ(sk.view(), " goal zs ");
  EXPECT_EQ(sk.run_length[2], 17);
  EXPECT_EQ(sk.source_begin[2], 1u);
  EXPECT_EQ(sk.source_begin[3], 18u);
  EXPECT_EQ(sk.run_length[6], 40);
  EXPECT_EQ(sk.source_begin[6], src.size() - 41);
  EXPECT_EQ(sk.source_begin[7], src.size() - 1);
  build_skeleton(std::string(70000, 'a'), sk);  // run lengths saturate, offsets do not
  ASSERT_EQ(sk.view(), " a ");
  EXPECT_EQ(sk.run_length[1], UINT16_MAX);
  EXPECT_EQ(sk.source_begin[2], 70000u);
}

// The scan buffer flips the high bit of skeleton bytes: reversibly, since skeletons
// keep letters of other scripts as UTF-8, and only in the skeleton part.
TEST(Skeleton, MarkingForTheScanFlipsTheHighBitOfTheSkeletonOnly) {
  Skeleton sk;
  sk.bytes = "Raw\n";
  sk.offset = 4;
  build_skeleton("F*ck Привет 你好 12", sk);
  const std::string before(sk.view());
  ASSERT_EQ(before, " f*ck пpивet 你好 12 ");  // Cyrillic look-alikes of Latin letters folded
  civicsift::text::mark_for_scan(sk);
  EXPECT_EQ(sk.bytes.substr(0, 4), "Raw\n");
  ASSERT_EQ(sk.view().size(), before.size());
  for (size_t i = 0; i < before.size(); ++i)
    EXPECT_EQ(static_cast<unsigned char>(sk.view()[i]), static_cast<unsigned char>(before[i]) ^ 0x80);
}
