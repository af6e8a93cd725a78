#include "text/skeleton.h"

#include <utf8proc.h>

#include <algorithm>
#include <array>

namespace civicsift::text {
namespace {

// How one source character takes part in a word.
enum class Kind : uint8_t {
  separator,  // ends a word (space, punctuation, emoji, invalid bytes)
  ignore,     // vanishes without ending a word (zero-width, combining marks)
  letter,
  digit,      // a letter in a word that has letters (leet), itself otherwise
  symbol,     // leet letter or grawlix mask inside a word, punctuation at its edges
};

struct AsciiClass {
  Kind kind;
  char letter;  // lower-case letter, digit, or the leet letter/mask it stands for
};

constexpr std::array<AsciiClass, 128> make_ascii_table() {
  std::array<AsciiClass, 128> t{};
  for (auto& c : t) c = {Kind::separator, ' '};
  for (char c = 'a'; c <= 'z'; ++c) t[static_cast<size_t>(c)] = {Kind::letter, c};
  for (char c = 'A'; c <= 'Z'; ++c)
    t[static_cast<size_t>(c)] = {Kind::letter, static_cast<char>(c - 'A' + 'a')};
  constexpr const char* leet_digits = "oi2easgtbg";  // 0..9; '2' has no letter reading
  for (int d = 0; d <= 9; ++d) t[static_cast<size_t>('0' + d)] = {Kind::digit, leet_digits[d]};
  t['@'] = {Kind::symbol, 'a'};
  t['$'] = {Kind::symbol, 's'};
  t['!'] = {Kind::symbol, 'i'};
  t['|'] = {Kind::symbol, 'l'};
  t['*'] = {Kind::symbol, kMask};
  t['#'] = {Kind::symbol, kMask};
  t['%'] = {Kind::symbol, kMask};
  return t;
}
constexpr auto kAscii = make_ascii_table();

// Letters from other scripts that look like Latin ones and are used to dodge filters.
struct Confusable {
  int32_t codepoint;
  char letter;
};
constexpr Confusable kConfusables[] = {
    {0x0131, 'i'}, {0x0251, 'a'}, {0x0391, 'a'}, {0x0392, 'b'}, {0x0395, 'e'}, {0x0396, 'z'},
    {0x0397, 'h'}, {0x0399, 'i'}, {0x039A, 'k'}, {0x039C, 'm'}, {0x039D, 'n'}, {0x039F, 'o'},
    {0x03A1, 'p'}, {0x03A4, 't'}, {0x03A5, 'y'}, {0x03A7, 'x'}, {0x03B1, 'a'}, {0x03B5, 'e'},
    {0x03B9, 'i'}, {0x03BA, 'k'}, {0x03BD, 'v'}, {0x03BF, 'o'}, {0x03C1, 'p'}, {0x03C4, 't'},
    {0x03C5, 'u'}, {0x03C7, 'x'}, {0x0405, 's'}, {0x0406, 'i'}, {0x0408, 'j'}, {0x0410, 'a'},
    {0x0412, 'b'}, {0x0415, 'e'}, {0x041A, 'k'}, {0x041C, 'm'}, {0x041D, 'h'}, {0x041E, 'o'},
    {0x0420, 'p'}, {0x0421, 'c'}, {0x0422, 't'}, {0x0423, 'y'}, {0x0425, 'x'}, {0x0430, 'a'},
    {0x0435, 'e'}, {0x043A, 'k'}, {0x043C, 'm'}, {0x043D, 'h'}, {0x043E, 'o'}, {0x0440, 'p'},
    {0x0441, 'c'}, {0x0442, 't'}, {0x0443, 'y'}, {0x0445, 'x'}, {0x044C, 'b'}, {0x0455, 's'},
    {0x0456, 'i'}, {0x0458, 'j'}, {0x0501, 'd'},
};

char confusable_letter(int32_t cp) {
  if (cp >= 0x1F1E6 && cp <= 0x1F1FF) return static_cast<char>('a' + (cp - 0x1F1E6));  // 🇦..🇿
  auto it = std::lower_bound(std::begin(kConfusables), std::end(kConfusables), cp,
                             [](const Confusable& c, int32_t v) { return c.codepoint < v; });
  return (it != std::end(kConfusables) && it->codepoint == cp) ? it->letter : '\0';
}

// One source character after folding: up to a few bytes of output.
struct Unit {
  Kind kind;
  uint8_t size;       // bytes in `text`
  char text[6];       // folded letters (or the ASCII character's class letter)
  uint32_t begin, end;
};

void fold_non_ascii(int32_t cp, Unit& u) {
  const utf8proc_property_t* prop = utf8proc_get_property(cp);
  if (prop->ignorable || prop->category == UTF8PROC_CATEGORY_MN ||
      prop->category == UTF8PROC_CATEGORY_ME || prop->category == UTF8PROC_CATEGORY_CF) {
    u.kind = Kind::ignore;
    return;
  }
  if (char c = confusable_letter(cp)) {
    u.kind = Kind::letter;
    u.text[0] = c;
    u.size = 1;
    return;
  }
  utf8proc_int32_t folded[8];
  int last_boundclass = 0;
  const auto n = utf8proc_decompose_char(
      cp, folded, 8,
      static_cast<utf8proc_option_t>(UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT | UTF8PROC_CASEFOLD |
                                     UTF8PROC_STRIPMARK | UTF8PROC_IGNORE),
      &last_boundclass);
  u.kind = Kind::separator;
  if (n <= 0 || n > 8) return;
  if (n == 1 && folded[0] < 128) {  // full-width and styled forms of ASCII
    const AsciiClass ac = kAscii[static_cast<size_t>(folded[0])];
    u.kind = ac.kind;
    u.text[0] = ac.letter;
    u.text[1] = static_cast<char>(folded[0]);
    u.size = 1;
    return;
  }
  const auto category = prop->category;
  const bool is_letter = category >= UTF8PROC_CATEGORY_LU && category <= UTF8PROC_CATEGORY_LO;
  if (!is_letter) return;
  // A letter: keep its folded form (ASCII where it has one, e.g. "ß" -> "ss").
  uint8_t size = 0;
  for (long i = 0; i < n; ++i) {
    const int32_t f = folded[i];
    if (f < 128) {
      if (kAscii[static_cast<size_t>(f)].kind != Kind::letter) continue;
      if (size + 1u > sizeof u.text) break;
      u.text[size++] = kAscii[static_cast<size_t>(f)].letter;
    } else {
      utf8proc_uint8_t buf[4];
      const auto len = utf8proc_encode_char(f, buf);
      if (size + static_cast<size_t>(len) > sizeof u.text) break;
      for (long k = 0; k < len; ++k) u.text[size++] = static_cast<char>(buf[k]);
    }
  }
  if (size > 0) {
    u.kind = Kind::letter;
    u.size = size;
  }
}

void decode_units(std::string_view source, std::vector<Unit>& units) {
  units.clear();
  const auto* p = reinterpret_cast<const unsigned char*>(source.data());
  const size_t n = source.size();
  size_t i = 0;
  while (i < n) {
    Unit u{};
    u.begin = static_cast<uint32_t>(i);
    if (p[i] < 128) {
      const AsciiClass ac = kAscii[p[i]];
      u.kind = ac.kind;
      u.text[0] = ac.letter;
      u.text[1] = static_cast<char>(p[i]);
      u.size = 1;
      ++i;
    } else {
      utf8proc_int32_t cp = -1;
      const auto len = utf8proc_iterate(p + i, static_cast<utf8proc_ssize_t>(n - i), &cp);
      if (len <= 0) {
        u.kind = Kind::separator;
        ++i;
      } else {
        fold_non_ascii(cp, u);
        i += static_cast<size_t>(len);
      }
    }
    u.end = static_cast<uint32_t>(i);
    // Whitespace-free streams of separators need only one unit.
    if (u.kind == Kind::separator && !units.empty() && units.back().kind == Kind::separator) {
      units.back().end = u.end;
      continue;
    }
    units.push_back(u);
  }
}

// A word after leet and mask mapping, before repeats are collapsed.
struct Word {
  uint32_t first_char;  // index into the char buffer
  uint32_t char_count;
  char separator_before;  // ' ' for whitespace-like separators, else the ASCII punctuation
  bool has_letter;
};

struct Char {
  char c;
  uint32_t begin, end;
};

struct Scratch {
  std::vector<Unit> units;
  std::vector<Char> chars;
  std::vector<Word> words;
};

char separator_char(std::string_view source, const Unit& u) {
  const auto c = static_cast<unsigned char>(source[u.begin]);
  if (u.end - u.begin == 1 && c < 128 && c > ' ' && c != '\x7f') return static_cast<char>(c);
  return ' ';
}

void split_words(std::string_view source, Scratch& s) {
  s.chars.clear();
  s.words.clear();
  char pending_separator = ' ';
  size_t i = 0;
  const size_t n = s.units.size();
  while (i < n) {
    if (s.units[i].kind == Kind::separator) {
      pending_separator = separator_char(source, s.units[i]);
      ++i;
      continue;
    }
    if (s.units[i].kind == Kind::ignore) {
      ++i;
      continue;
    }
    size_t j = i;
    bool has_letter = false;
    while (j < n && s.units[j].kind != Kind::separator) {
      has_letter |= s.units[j].kind == Kind::letter;
      ++j;
    }
    // Symbols at the edges of a word are punctuation ("wow!", "#topic"), except the
    // leading letter-like ones that mask a first letter ("$hit", "@ss").
    size_t first = i, last = j;  // [first, last)
    while (last > first && (s.units[last - 1].kind == Kind::symbol ||
                            s.units[last - 1].kind == Kind::ignore))
      --last;
    while (first < last && (s.units[first].kind == Kind::ignore ||
                            (s.units[first].kind == Kind::symbol &&
                             (s.units[first].text[0] == kMask || !has_letter))))
      ++first;
    Word w{static_cast<uint32_t>(s.chars.size()), 0, pending_separator, has_letter};
    for (size_t k = first; k < last; ++k) {
      const Unit& u = s.units[k];
      switch (u.kind) {
        case Kind::letter:
          for (uint8_t b = 0; b < u.size; ++b) s.chars.push_back({u.text[b], u.begin, u.end});
          break;
        case Kind::digit:
          // In a word with letters a digit is leet ("b1tch"); alone it stays a number.
          s.chars.push_back({has_letter && u.text[0] != '2' ? u.text[0] : u.text[1], u.begin, u.end});
          break;
        case Kind::symbol:
          if (has_letter) s.chars.push_back({u.text[0], u.begin, u.end});
          break;
        default:
          break;
      }
    }
    w.char_count = static_cast<uint32_t>(s.chars.size()) - w.first_char;
    if (w.char_count > 0) s.words.push_back(w);
    pending_separator = ' ';
    i = j;
  }
}

bool is_single_letter(const Word& w, const std::vector<Char>& chars) {
  if (w.char_count != 1 || !w.has_letter) return false;
  const char c = chars[w.first_char].c;
  return (c >= 'a' && c <= 'z') || c == kMask;
}

void emit_char(Skeleton& out, char c, uint32_t begin, uint32_t end) {
  // Repeats collapse: "fuuuck" -> "fuck" with the run length kept for term checks.
  if (c != ' ' && !out.bytes.empty() && out.bytes.back() == c &&
      static_cast<unsigned char>(c) < 128) {
    out.source_end.back() = end;
    if (out.run_length.back() < UINT16_MAX) ++out.run_length.back();
    return;
  }
  out.bytes.push_back(c);
  out.source_begin.push_back(begin);
  out.source_end.push_back(end);
  out.run_length.push_back(1);
}

void emit_space(Skeleton& out, uint32_t at) { emit_char(out, ' ', at, at); }

// Letters spelled out one by one ("f u c k", "f.u.c.k", "f-u-c-k") form one word.
void emit_words(const Scratch& s, Skeleton& out, uint32_t source_size) {
  emit_space(out, 0);
  const auto& words = s.words;
  size_t i = 0;
  while (i < words.size()) {
    size_t run_end = i;
    if (is_single_letter(words[i], s.chars)) {
      run_end = i + 1;
      while (run_end < words.size() && is_single_letter(words[run_end], s.chars) &&
             (run_end == i + 1 ||
              words[run_end].separator_before == words[i + 1].separator_before))
        ++run_end;
      const bool spaced = words[i + 1 < words.size() ? i + 1 : i].separator_before == ' ';
      const char first = s.chars[words[i].first_char].c;
      // In "i f u c k" or "a b c", a leading "a"/"i" is more likely a word of its own.
      if (spaced && run_end - i >= 4 && (first == 'a' || first == 'i')) {
        const Char& c = s.chars[words[i].first_char];
        emit_char(out, c.c, c.begin, c.end);
        emit_space(out, c.end);
        ++i;
      }
      if (run_end - i < 3) run_end = i;  // too short to be a spelled-out word
    }
    if (run_end > i) {
      for (size_t k = i; k < run_end; ++k) {
        const Char& c = s.chars[words[k].first_char];
        emit_char(out, c.c, c.begin, c.end);
      }
      emit_space(out, s.chars[words[run_end - 1].first_char].end);
      i = run_end;
      continue;
    }
    const Word& w = words[i];
    for (uint32_t k = w.first_char; k < w.first_char + w.char_count; ++k)
      emit_char(out, s.chars[k].c, s.chars[k].begin, s.chars[k].end);
    emit_space(out, s.chars[w.first_char + w.char_count - 1].end);
    ++i;
  }
  if (out.bytes.size() == 1) emit_space(out, source_size);  // an empty comment is "  "
}

Scratch& thread_scratch() {
  thread_local Scratch scratch;
  return scratch;
}

}  // namespace

void build_skeleton(std::string_view source, Skeleton& out) {
  out.clear();
  Scratch& s = thread_scratch();
  decode_units(source, s.units);
  split_words(source, s);
  emit_words(s, out, static_cast<uint32_t>(source.size()));
}

std::string term_skeleton(std::string_view term, std::vector<uint16_t>* run_lengths) {
  Skeleton sk;
  build_skeleton(term, sk);
  // Strip the framing spaces.
  size_t b = 1, e = sk.bytes.size() > 1 ? sk.bytes.size() - 1 : 1;
  if (run_lengths)
    run_lengths->assign(sk.run_length.begin() + static_cast<long>(b),
                        sk.run_length.begin() + static_cast<long>(e));
  return sk.bytes.substr(b, e - b);
}

}  // namespace civicsift::text
