#include "policy/phrase_template.h"

#include <fmt/format.h>

#include <cctype>

namespace civicsift {
namespace {

struct TooMany {};
struct Malformed {
  std::string message;
};

class Expander {
 public:
  explicit Expander(std::string_view s) : s_(s) {}

  std::vector<std::string> run() {
    auto out = alternatives();
    if (pos_ != s_.size()) throw Malformed{fmt::format("unexpected ')' at {}", pos_)};
    return out;
  }

 private:
  // alternatives := sequence ('|' sequence)*
  std::vector<std::string> alternatives() {
    std::vector<std::string> out = sequence();
    while (pos_ < s_.size() && s_[pos_] == '|') {
      ++pos_;
      auto more = sequence();
      out.insert(out.end(), more.begin(), more.end());
      check(out.size());
    }
    return out;
  }

  // sequence := (group '?'? | char '?'?)*
  std::vector<std::string> sequence() {
    std::vector<std::string> acc{""};
    while (pos_ < s_.size() && s_[pos_] != '|' && s_[pos_] != ')') {
      std::vector<std::string> item;
      if (s_[pos_] == '(') {
        ++pos_;
        item = alternatives();
        if (pos_ >= s_.size() || s_[pos_] != ')') throw Malformed{"unbalanced '('"};
        ++pos_;
      } else {
        item = {std::string(1, s_[pos_++])};
      }
      if (pos_ < s_.size() && s_[pos_] == '?') {
        ++pos_;
        item.emplace_back();
      }
      std::vector<std::string> next;
      check(acc.size() * item.size());
      next.reserve(acc.size() * item.size());
      for (const auto& a : acc)
        for (const auto& b : item) next.push_back(a + b);
      acc = std::move(next);
    }
    return acc;
  }

  static void check(size_t n) {
    if (n > kMaxTemplateExpansions) throw TooMany{};
  }

  std::string_view s_;
  size_t pos_ = 0;
};

// Whether some spelling of a well-formed template holds no letter or digit: such a
// term would match nothing, or only what no comment is.
class BlankFinder {
 public:
  explicit BlankFinder(std::string_view s) : s_(s) {}
  bool run() { return alternatives(); }

 private:
  bool alternatives() {
    bool blank = sequence();
    while (pos_ < s_.size() && s_[pos_] == '|') {
      ++pos_;
      blank = sequence() || blank;
    }
    return blank;
  }

  bool sequence() {
    bool blank = true;
    while (pos_ < s_.size() && s_[pos_] != '|' && s_[pos_] != ')') {
      bool item_blank;
      if (s_[pos_] == '(') {
        ++pos_;
        item_blank = alternatives();
        ++pos_;  // ')'
      } else {
        const auto c = static_cast<unsigned char>(s_[pos_++]);
        item_blank = c < 0x80 && !std::isalnum(c);  // other scripts' letters are letters
      }
      if (pos_ < s_.size() && s_[pos_] == '?') {
        ++pos_;
        item_blank = true;
      }
      blank = blank && item_blank;
    }
    return blank;
  }

  std::string_view s_;
  size_t pos_ = 0;
};

}  // namespace

bool is_template(std::string_view term) { return term.find_first_of("()|?") != std::string_view::npos; }

std::optional<std::string> template_syntax_error(std::string_view term) {
  int depth = 0;
  char previous = '(';
  for (size_t i = 0; i < term.size(); ++i) {
    const char c = term[i];
    if (c == '(') ++depth;
    if (c == ')' && --depth < 0) return fmt::format("unexpected ')' at {}", i);
    if (c == '?' && (previous == '(' || previous == '|' || previous == '?'))
      return fmt::format("'?' at {} has nothing to make optional", i);
    previous = c;
  }
  if (depth != 0) return std::string("unbalanced '('");
  if (BlankFinder(term).run()) return std::string("can be spelled with no letters or digits (an empty alternative, or nothing but optional parts)");
  return std::nullopt;
}

std::variant<std::vector<std::string>, std::string> expand_template(std::string_view term) {
  if (!is_template(term)) return std::vector<std::string>{std::string(term)};
  try {
    return Expander(term).run();
  } catch (const TooMany&) {
    return fmt::format("expands to more than {} phrases", kMaxTemplateExpansions);
  } catch (const Malformed& m) {
    return m.message;
  }
}

}  // namespace civicsift
