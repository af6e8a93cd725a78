#include "policy/regex_digits.h"

#include <algorithm>
#include <cstddef>

namespace civicsift {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// A recursive-descent reading of the regex that answers, for each part, whether every
// string it matches holds a digit: a sequence needs one if any of its parts does, an
// alternation if all its branches do, a repeat if it repeats at least once.
class DigitAnalysis {
 public:
  explicit DigitAnalysis(std::string_view re) : re_(re) {}

  bool run() {
    const bool needs = alternation();
    return !failed_ && pos_ == re_.size() && needs;
  }

 private:
  static constexpr int kMaxDepth = 100;  // deeper nesting: give up rather than recurse

  bool at_end() const { return pos_ >= re_.size(); }
  char peek() const { return re_[pos_]; }
  bool fail() {
    failed_ = true;
    pos_ = re_.size();
    return false;
  }

  bool alternation() {
    bool all = sequence();
    while (!failed_ && !at_end() && peek() == '|') {
      ++pos_;
      all = sequence() && all;
    }
    return all;
  }

  bool sequence() {
    bool any = false;
    while (!failed_ && !at_end() && peek() != '|' && peek() != ')') any = repeated() || any;
    return any;
  }

  bool repeated() {
    const bool needs = atom();
    if (failed_ || at_end()) return needs;
    size_t min = 1;
    const char c = peek();
    if (c == '?' || c == '*') {
      min = 0;
      ++pos_;
    } else if (c == '+') {
      ++pos_;
    } else if (c == '{' && pos_ + 1 < re_.size() && is_digit(re_[pos_ + 1])) {
      ++pos_;
      min = 0;
      while (!at_end() && is_digit(peek()))
        min = std::min<size_t>(min * 10 + static_cast<size_t>(re_[pos_++] - '0'), 1000);
      while (!at_end() && peek() != '}') {
        if (!is_digit(peek()) && peek() != ',') return fail();
        ++pos_;
      }
      if (at_end()) return fail();
      ++pos_;
    } else {
      return needs;
    }
    if (!at_end() && (peek() == '?' || peek() == '+')) ++pos_;  // lazy or possessive
    if (!at_end() && (peek() == '?' || peek() == '*' || peek() == '+' || peek() == '{')) return fail();
    return min > 0 && needs;
  }

  bool atom() {
    const char c = re_[pos_++];
    switch (c) {
      case '(': return group();
      case '[': return char_class();
      case '\\': return escape();
      default: return is_digit(c);  // '.', '^', '$' and other characters: no digit required
    }
  }

  bool group() {
    if (++depth_ > kMaxDepth) return fail();
    if (!at_end() && peek() == '*') return fail();  // a verb such as (*UTF8) or (*UCP): not read
    if (!at_end() && peek() == '?') {
      // Only non-capturing groups are read; flags ((?x) changes the syntax), lookaround
      // and the rest are not.
      if (pos_ + 1 < re_.size() && re_[pos_ + 1] == ':') pos_ += 2;
      else return fail();
    }
    const bool needs = alternation();
    if (failed_ || at_end() || peek() != ')') return fail();
    ++pos_;
    --depth_;
    return needs;
  }

  // Inside or outside a class: whether the escape stands only for digits.
  bool escape() {
    if (at_end()) return fail();
    const char c = re_[pos_++];
    if (c == 'd') return true;
    if (c == 'x') {  // \xhh or \x{h...}: one byte, a digit or not
      unsigned value = 0;
      if (!at_end() && peek() == '{') {
        ++pos_;
        while (!at_end() && peek() != '}' && value <= 0x10FFFF) value = value * 16 + hex(re_[pos_++]);
        if (at_end() || peek() != '}') return fail();
        ++pos_;
      } else {
        for (int k = 0; k < 2 && !at_end() && hex_digit(peek()); ++k) value = value * 16 + hex(re_[pos_++]);
      }
      return !failed_ && value >= '0' && value <= '9';
    }
    // Back-references, octal, \Q...\E, \p{..}, \c.: not read.
    if (is_digit(c) || c == 'Q' || c == 'p' || c == 'P' || c == 'c' || c == 'o' || c == 'g' || c == 'k') return fail();
    return false;  // \w \s \b \. \$ ...: not only digits
  }

  static bool hex_digit(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
  unsigned hex(char c) {
    if (!hex_digit(c)) {
      fail();
      return 0;
    }
    return is_digit(c) ? static_cast<unsigned>(c - '0') : static_cast<unsigned>((c | 0x20) - 'a' + 10);
  }

  // A bracket class holds only digits when each of its items does ("[0-9]", "[\d]").
  bool char_class() {
    bool only_digits = true;
    if (!at_end() && peek() == '^') {
      only_digits = false;  // a negated class matches something other than digits
      ++pos_;
    }
    bool first = true;
    while (!at_end() && (peek() != ']' || first)) {
      first = false;
      const char c = re_[pos_++];
      if (c == '[' && !at_end() && peek() == ':') return fail();  // POSIX classes: not read
      bool item_digit;
      char low = c;
      if (c == '\\') {
        item_digit = escape();
        low = '\0';
      } else {
        item_digit = is_digit(c);
      }
      if (!at_end() && peek() == '-' && pos_ + 1 < re_.size() && re_[pos_ + 1] != ']') {
        ++pos_;
        char high = re_[pos_++];
        if (high == '\\') return fail();
        item_digit = low != '\0' && is_digit(low) && is_digit(high) && low <= high;
      }
      only_digits = only_digits && item_digit;
    }
    if (at_end()) return fail();
    ++pos_;  // ']'
    return only_digits;
  }

  std::string_view re_;
  size_t pos_ = 0;
  int depth_ = 0;
  bool failed_ = false;
};

}  // namespace

bool regex_requires_digit(std::string_view regex) { return !regex.empty() && DigitAnalysis(regex).run(); }

}  // namespace civicsift
