#include "text/skeleton.h"

#include <utf8proc.h>

// Plain words are read sixteen bytes at a time with SSE2, which every x86-64 CPU has
// (Hyperscan, the scan engine, runs on x86 only).
#if !defined(__SSE2__)
#error "civicsift's skeleton needs SSE2 (x86-64)"
#endif
#include <emmintrin.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <iterator>

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
  t['^'] = {Kind::symbol, kMask};
  return t;
}
constexpr auto kAscii = make_ascii_table();

// Letters from other scripts that look like Latin ones and are used to dodge filters
// (Cyrillic, Greek, Armenian, small capitals, and the Canadian syllabics that "fancy
// text" generators use: "ᖴᑌᑕK").
struct Confusable {
  int32_t codepoint;
  char letter;
};
constexpr Confusable kConfusables[] = {
    {0x0131, 'i'}, {0x0192, 'f'}, {0x0251, 'a'}, {0x0261, 'g'}, {0x0262, 'g'}, {0x026A, 'i'},
    {0x0274, 'n'}, {0x0280, 'r'}, {0x028F, 'y'}, {0x0299, 'b'}, {0x029C, 'h'}, {0x029F, 'l'},
    {0x0391, 'a'}, {0x0392, 'b'}, {0x0395, 'e'}, {0x0396, 'z'}, {0x0397, 'h'}, {0x0399, 'i'},
    {0x039A, 'k'}, {0x039C, 'm'}, {0x039D, 'n'}, {0x039F, 'o'}, {0x03A1, 'p'}, {0x03A4, 't'},
    {0x03A5, 'y'}, {0x03A7, 'x'}, {0x03B1, 'a'}, {0x03B5, 'e'}, {0x03B9, 'i'}, {0x03BA, 'k'},
    {0x03BC, 'u'}, {0x03BD, 'v'}, {0x03BF, 'o'}, {0x03C1, 'p'}, {0x03C4, 't'}, {0x03C5, 'u'},
    {0x03C7, 'x'}, {0x03F2, 'c'}, {0x03F9, 'c'}, {0x0405, 's'}, {0x0406, 'i'}, {0x0408, 'j'},
    {0x0410, 'a'}, {0x0412, 'b'}, {0x0415, 'e'}, {0x041A, 'k'}, {0x041C, 'm'}, {0x041D, 'h'},
    {0x041E, 'o'}, {0x0420, 'p'}, {0x0421, 'c'}, {0x0422, 't'}, {0x0423, 'y'}, {0x0425, 'x'},
    {0x0430, 'a'}, {0x0435, 'e'}, {0x043A, 'k'}, {0x043C, 'm'}, {0x043D, 'h'}, {0x043E, 'o'},
    {0x0440, 'p'}, {0x0441, 'c'}, {0x0442, 't'}, {0x0443, 'y'}, {0x0445, 'x'}, {0x044C, 'b'},
    {0x0455, 's'}, {0x0456, 'i'}, {0x0458, 'j'}, {0x04BA, 'h'}, {0x04BB, 'h'}, {0x04C0, 'l'},
    {0x04CF, 'l'}, {0x0500, 'd'}, {0x0501, 'd'}, {0x051A, 'q'}, {0x051B, 'q'}, {0x051C, 'w'},
    {0x051D, 'w'}, {0x0566, 'q'}, {0x0570, 'h'}, {0x0578, 'n'}, {0x057D, 'u'}, {0x0581, 'g'},
    {0x0585, 'o'}, {0x13A5, 'i'}, {0x142F, 'v'}, {0x144C, 'u'}, {0x144E, 'n'}, {0x1455, 'c'},
    {0x146B, 'q'}, {0x146D, 'p'}, {0x148D, 'j'}, {0x14AA, 'l'}, {0x1515, 's'}, {0x156E, 'e'},
    {0x157C, 'h'}, {0x1587, 'r'}, {0x15B4, 'f'}, {0x15BB, 'y'}, {0x15E9, 'a'}, {0x15EA, 'd'},
    {0x15EF, 'w'}, {0x15F0, 'm'}, {0x15F7, 'b'}, {0x1614, 'z'}, {0x161C, 'g'}, {0x166D, 'x'},
    {0x1D00, 'a'}, {0x1D04, 'c'}, {0x1D05, 'd'}, {0x1D07, 'e'}, {0x1D0A, 'j'}, {0x1D0B, 'k'},
    {0x1D0D, 'm'}, {0x1D0F, 'o'}, {0x1D18, 'p'}, {0x1D1B, 't'}, {0x1D1C, 'u'}, {0x1D20, 'v'},
    {0x1D21, 'w'}, {0x1D22, 'z'}, {0xA730, 'f'}, {0xA731, 's'},
};

char confusable_letter(int32_t cp) {
  // Letters in boxes and circles that Unicode gives no letter decomposition (or one
  // with parentheses around it): 🇦..🇿, 🅐..🅩, 🅰..🆉, ⒜..⒵, 🄐..🄩.
  constexpr int32_t kLetterRunsFromA[] = {0x1F1E6, 0x1F150, 0x1F170, 0x249C, 0x1F110};
  for (const int32_t a : kLetterRunsFromA)
    if (cp >= a && cp < a + 26) return static_cast<char>('a' + (cp - a));
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
    } else if (const char c = confusable_letter(f)) {  // an accented look-alike ("ї" is "і" + accent)
      if (size + 1u > sizeof u.text) break;
      u.text[size++] = c;
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

// One character of the word being read.
struct WordChar {
  char c;        // letter, leet reading, or mask
  char digit;    // for digits: the digit itself
  Kind kind;
  uint32_t begin, end;
};

// A one-letter word waiting to see whether it is part of a spelled-out word.
struct Single {
  char c;
  char separator_before;
  uint32_t begin, end;
};

// Source bytes the plain-word path reads at once (one SSE2 register).
constexpr size_t kBlock = 16;

// Builds the skeleton in one pass over the source. Output arrays are sized for the
// worst case up front and written through raw pointers: this is the hot path.
class Builder {
 public:
  Builder(std::string_view source, Skeleton& out, std::vector<WordChar>& word, std::vector<Single>& singles)
      : src_(source), out_(out), word_(word), singles_(singles) {
    // Most text yields about a byte per source byte; folded letters may yield more,
    // and then the arrays grow (see emit). Capacity is kept across calls, but a
    // thread that once saw a huge comment gives the memory back.
    const size_t want = source.size() + source.size() / 8 + 16;
    const size_t have = out.run_length.size();
    resize_output(have < want || (have > (1u << 20) && have > 4 * want) ? want : have);
    if (word.size() < 64) word.resize(64);
    singles.clear();
    // The last kBlock source bytes, then zeros (separators), copied once per comment.
    tail_from_ = source.size() > kBlock ? source.size() - kBlock : 0;
    std::memset(tail_, 0, sizeof tail_);
    if (!source.empty()) std::memcpy(tail_, source.data() + tail_from_, source.size() - tail_from_);
  }

  void run() {
    emit(' ', 0);
    const auto* p = reinterpret_cast<const unsigned char*>(src_.data());
    const size_t n = src_.size();
    size_t i = 0;
    while (i < n) {
      const unsigned char c = p[i];
      if (c < 128 && word_size_ == 0 && kAscii[c].kind == Kind::letter) {
        // Fast paths: plain ASCII words, by far the most common text; several at once
        // where they are simple enough, else one.
        size_t j = singles_.empty() ? plain_words(p, n, i) : i;
        if (j == i) j = plain_word(p, n, i);
        if (j != i) {
          i = j;
          continue;
        }
      }
      if (c < 128) {
        const AsciiClass ac = kAscii[c];
        if (ac.kind == Kind::separator || is_number_sign(p, n, i)) {
          end_word();
          separator_ = separator_char(c);
        } else {
          add(ac.letter, static_cast<char>(c), ac.kind, static_cast<uint32_t>(i), static_cast<uint32_t>(i + 1));
        }
        ++i;
        continue;
      }
      utf8proc_int32_t cp = -1;
      const auto len = utf8proc_iterate(p + i, static_cast<utf8proc_ssize_t>(n - i), &cp);
      const auto b = static_cast<uint32_t>(i);
      i += len > 0 ? static_cast<size_t>(len) : 1;
      const auto e = static_cast<uint32_t>(i);
      Unit u{};
      if (len <= 0) u.kind = Kind::separator;
      else fold_non_ascii(cp, u);
      switch (u.kind) {
        case Kind::separator:
          end_word();
          separator_ = ' ';
          break;
        case Kind::ignore:
          // A combining mark belongs to the character before it: a word's span ends
          // after the accent on its last letter ("fucké" with a combining acute).
          if (word_size_ > 0 && word_[word_size_ - 1].end == b) word_[word_size_ - 1].end = e;
          break;
        case Kind::letter:
          for (uint8_t k = 0; k < u.size; ++k) add(u.text[k], u.text[k], Kind::letter, b, e);
          break;
        default:
          add(u.text[0], u.text[1], u.kind, b, e);
      }
    }
    end_word();
    flush_singles();
    if (size_ == 1) emit(' ', static_cast<uint32_t>(n));  // empty: "  "
    out_.size = size_;
  }

 private:
  void resize_output(size_t cap) {
    const bool shrinking = cap < out_.run_length.size();
    out_.bytes.resize(out_.offset + cap);
    out_.source_begin.resize(cap);
    out_.run_length.resize(cap);
    if (shrinking) {  // resize() alone keeps the capacity
      out_.bytes.shrink_to_fit();
      out_.source_begin.shrink_to_fit();
      out_.run_length.shrink_to_fit();
    }
    cap_ = cap;
    bytes_ = out_.bytes.data() + out_.offset;
    begin_ = out_.source_begin.data();
    runs_ = out_.run_length.data();
  }

  void add(char c, char digit, Kind kind, uint32_t b, uint32_t e) {
    if (word_size_ == word_.size()) word_.resize(word_.size() * 2);
    word_[word_size_++] = {c, digit, kind, b, e};
    has_letter_ |= kind == Kind::letter;
    has_digit_ |= kind == Kind::digit;
  }

  // Emits the plain words from `from` on, sixteen source bytes at a time, and returns
  // where it stopped (`from` if at once). A block is taken up to its last space while
  // that stretch holds only ASCII letters and single spaces, no word of one letter (it
  // may be spelled out) and no repeated letter: its skeleton is then the stretch
  // lower-cased, byte for byte, so there is no branch per word. Call at a word
  // boundary with no spelled-out letters pending.
  size_t plain_words(const unsigned char* p, size_t n, size_t from) {
    const size_t need = size_ + (n - from) + kBlock + 2;
    if (need > cap_) resize_output(need);
    const __m128i space = _mm_set1_epi8(' ');
    size_t i = from;
    while (i < n) {
      const __m128i block = load_block(p, n, i);
      const __m128i lower = _mm_or_si128(block, space);
      const unsigned letters = letter_mask(lower);
      const auto spaces = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(block, space)));
      if (spaces == 0 || (letters & 1) == 0) break;
      const unsigned stretch = (2u << (31 - __builtin_clz(spaces))) - 1;  // up to the last space
      // Each byte against the one before it; the first against the skeleton's last byte (a space).
      const __m128i before = _mm_or_si128(_mm_slli_si128(lower, 1), _mm_cvtsi32_si128(' '));
      const auto repeats = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(lower, before)));
      const unsigned word_starts = letters & ((spaces << 1) | 1);
      const unsigned one_letter_words = word_starts & (spaces >> 1);
      const unsigned disqualified = (~(letters | spaces) | repeats | one_letter_words) & stretch;
      // Otherwise the whole words before the first byte that disqualifies it are
      // still taken, up to the last space before that byte; the caller reads the word
      // that holds it.
      const unsigned spaces_taken = disqualified ? spaces & ((disqualified & (0u - disqualified)) - 1) : spaces;
      if (spaces_taken == 0) break;
      store_letters(lower, i, bytes_ + size_, begin_ + size_, runs_ + size_);  // a space stays a space
      const auto part = static_cast<size_t>(32 - __builtin_clz(spaces_taken));
      size_ += part;
      i += part;
      if (disqualified) break;
    }
    if (i != from) separator_ = ' ';
    return i;
  }

  // Emits the word of ASCII letters starting at `from`, with the separator after it,
  // and returns where reading goes on; returns `from` (emitting nothing) when the word
  // turns out to hold other characters.
  size_t plain_word(const unsigned char* p, size_t n, size_t from) {
    size_t k = from + 1;
    size_t mark = size_;
    if (k < n && p[k] < 128 && kAscii[p[k]].kind == Kind::letter) {  // one letter ("a", "I") needs no copy
      // A word of two letters or more ends the spelled-out letters before it,
      // whichever path reads it, so they go first.
      if (!singles_.empty()) flush_singles();
      // An ASCII letter yields at most one byte: room for the rest of the input
      // suffices, plus one block, since blocks are stored whole.
      const size_t need = size_ + (n - from) + kBlock + 2;
      if (need > cap_) resize_output(need);
      mark = size_;
      k = from;
      for (;;) {
        const size_t len = copy_letters(p, n, k);
        k += len;
        if (len < kBlock) break;
      }
    }
    if (k < n && (p[k] >= 128 || kAscii[p[k]].kind != Kind::separator)) {
      size_ = mark;  // not a plain word: the general path reads it again
      return from;
    }
    if (k - from == 1) {  // may be one letter of a spelled-out word
      singles_.push_back({kAscii[p[from]].letter, separator_, static_cast<uint32_t>(from), static_cast<uint32_t>(k)});
    } else {
      emit(' ', static_cast<uint32_t>(k));
    }
    if (k == n) {
      separator_ = ' ';
      return k;
    }
    separator_ = separator_char(p[k]);  // the separator that ended the word
    return k + 1;
  }

  // Copies the ASCII letters at the start of the block of kBlock source bytes at
  // `from`, lower-cased and with repeats collapsed, and returns how many there were.
  // The word's length comes from a bit mask rather than from a per-byte loop exit,
  // which mispredicts once a word wherever word lengths vary (real comments: 26%
  // faster over OLID tweets).
  size_t copy_letters(const unsigned char* p, size_t n, size_t from) {
    const __m128i lower = _mm_or_si128(load_block(p, n, from), _mm_set1_epi8(0x20));
    const unsigned letters = letter_mask(lower);
    const auto len = static_cast<size_t>(__builtin_ctz(~letters));  // bit 16 is always set
    const unsigned in_word = (1u << len) - 1;
    // Locals, not members: stores through char* could alias the members and force
    // the compiler to reload them after every store.
    char* __restrict bytes = bytes_;
    uint32_t* __restrict begin = begin_;
    uint16_t* __restrict runs = runs_;
    size_t size = size_;
    // Each letter against the one before it; the first against the skeleton's last byte.
    const auto last = static_cast<unsigned char>(bytes[size - 1]);
    const __m128i before = _mm_or_si128(_mm_slli_si128(lower, 1), _mm_cvtsi32_si128(last));
    const auto repeats = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(lower, before))) & in_word;
    // Letters between repeats are stored a block at a time; each repeat extends the
    // byte before it ("fuuuck" -> "fuck", the run length kept for term checks).
    alignas(16) char folded[2 * kBlock];  // read up to kBlock past any letter
    _mm_store_si128(reinterpret_cast<__m128i*>(folded), lower);
    _mm_store_si128(reinterpret_cast<__m128i*>(folded + kBlock), _mm_setzero_si128());
    size_t kept_from = 0;
    for (unsigned rest = repeats; rest != 0; rest &= rest - 1) {
      const auto repeat = static_cast<size_t>(__builtin_ctz(rest));
      if (repeat > kept_from) {  // "aaaa" stores nothing between its repeats
        store_letters(_mm_loadu_si128(reinterpret_cast<const __m128i*>(folded + kept_from)), from + kept_from,
                      bytes + size, begin + size, runs + size);
        size += repeat - kept_from;
      }
      if (runs[size - 1] < UINT16_MAX) ++runs[size - 1];
      kept_from = repeat + 1;
    }
    store_letters(_mm_loadu_si128(reinterpret_cast<const __m128i*>(folded + kept_from)), from + kept_from,
                  bytes + size, begin + size, runs + size);
    size_ = size + (len - kept_from);
    return len;
  }

  // The kBlock source bytes at `at`; near the end of the source, from the padded copy
  // of its tail, so nothing past the source is read.
  __m128i load_block(const unsigned char* p, size_t n, size_t at) const {
    const unsigned char* src = n - at < kBlock ? tail_ + (at - tail_from_) : p + at;
    return _mm_loadu_si128(reinterpret_cast<const __m128i*>(src));
  }

  // Which bytes of a block OR-ed with 0x20 are ASCII letters (then lower-cased);
  // bytes >= 128 are negative and fail.
  static unsigned letter_mask(__m128i lower) {
    return static_cast<unsigned>(_mm_movemask_epi8(_mm_and_si128(
        _mm_cmpgt_epi8(lower, _mm_set1_epi8('a' - 1)), _mm_cmplt_epi8(lower, _mm_set1_epi8('z' + 1)))));
  }

  // How a separator is remembered for the one-letter word after it: "f.u.c.k" is
  // spelled out, "u r a" is not (flush_singles compares them).
  static char separator_char(unsigned char c) { return (c > ' ' && c != 0x7f) ? static_cast<char>(c) : ' '; }

  // Stores kBlock skeleton bytes, which came one each from source bytes [at, at + kBlock),
  // at the given output positions; the caller counts those it keeps.
  static void store_letters(__m128i letters, size_t at, char* __restrict bytes, uint32_t* __restrict begin,
                            uint16_t* __restrict runs) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(bytes), letters);
    __m128i source = _mm_add_epi32(_mm_set1_epi32(static_cast<int>(at)), _mm_setr_epi32(0, 1, 2, 3));
    const __m128i four = _mm_set1_epi32(4);
    for (size_t q = 0; q < kBlock; q += 4) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(begin + q), source);
      source = _mm_add_epi32(source, four);
    }
    _mm_storeu_si128(reinterpret_cast<__m128i*>(runs), _mm_set1_epi16(1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(runs + 8), _mm_set1_epi16(1));
  }

  // Appends skeleton byte `c` from source byte `b` on. A space after a word is given
  // the source offset where the word ends (see Skeleton::source_begin).
  void emit(char c, uint32_t b) {
    // Repeats collapse: "fuuuck" -> "fuck" with the run length kept for term checks.
    if (c != ' ' && size_ > 0 && bytes_[size_ - 1] == c && static_cast<unsigned char>(c) < 128) {
      if (runs_[size_ - 1] < UINT16_MAX) ++runs_[size_ - 1];
      return;
    }
    if (size_ == cap_) resize_output(cap_ * 2);
    bytes_[size_] = c;
    begin_[size_] = b;
    runs_[size_] = 1;
    ++size_;
  }

  void end_word() {
    if (word_size_ == 0) return;
    // Symbols at the edges of a word are punctuation ("wow!", "#topic"), except the
    // leading letter-like ones that mask a first letter ("$hit", "@ss") and a closing
    // "$$", a double s, with the letter-like symbols right before it ("a$$", "p!$$",
    // "@$$"): one '$' at the end stays punctuation, and "$$$" alone is no word.
    size_t first = 0, last = word_size_;
    while (last > first && word_[last - 1].kind == Kind::symbol) --last;
    size_t like_end = last;  // the letter-like symbols after the word's last letter or digit
    while (like_end < word_size_ && is_letter_like(word_[like_end].c)) ++like_end;
    size_t dollars_end = like_end;  // their last run of '$'
    while (dollars_end > last && word_[dollars_end - 1].c != 's') --dollars_end;
    size_t dollars_begin = dollars_end;
    while (dollars_begin > last && word_[dollars_begin - 1].c == 's') --dollars_begin;
    if (dollars_end - dollars_begin >= 2 && (has_letter_ || dollars_begin > last)) {
      last = dollars_end;
      has_letter_ = true;
    }
    while (first < last && word_[first].kind == Kind::symbol && (word_[first].c == kMask || !has_letter_)) ++first;
    if (has_letter_) mask_grawlix(first, last);
    // Map in place: in a word with letters a digit is leet ("b1tch"), alone a number,
    // and in a code or a quantity a digit too (asked only of a word with both).
    const bool quantity = has_letter_ && has_digit_ && is_quantity(first, last);
    if (quantity && word_[first].kind == Kind::symbol) ++first;  // the '$' of "$5k"
    const bool leet = has_letter_ && has_digit_ && !quantity && !is_code(first, last);
    size_t m = 0;
    for (size_t k = first; k < last; ++k) {
      WordChar w = word_[k];
      if (w.kind == Kind::digit) w.c = leet && w.c != '2' ? w.c : w.digit;
      else if (w.kind == Kind::symbol && !has_letter_) continue;
      word_[m++] = w;
    }
    if (m == 1 && has_letter_ && ((word_[0].c >= 'a' && word_[0].c <= 'z') || word_[0].c == kMask)) {
      singles_.push_back({word_[0].c, separator_, word_[0].begin, word_[0].end});
    } else if (m > 0) {
      if (!singles_.empty()) flush_singles();
      for (size_t k = 0; k < m; ++k) emit(word_[k].c, word_[k].begin);
      emit(' ', word_[m - 1].end);
    }
    word_size_ = 0;
    has_letter_ = has_digit_ = false;
    separator_ = ' ';
  }

  static bool is_letter_like(char c) { return c >= 'a' && c <= 'z'; }

  // '#' before digits that end the word is a number sign ("No#5", "CH#7", "#1"), not
  // a mask over leet letters ("b#7ch" is "b*tch").
  static bool is_number_sign(const unsigned char* p, size_t n, size_t i) {
    if (p[i] != '#' || i + 1 >= n || !is_digit(static_cast<char>(p[i + 1]))) return false;
    size_t k = i + 1;
    while (k < n && is_digit(static_cast<char>(p[k]))) ++k;
    return k == n || p[k] >= 128 || kAscii[p[k]].kind == Kind::separator;
  }

  // Whether word_[first, last) is a number with a unit or a multiplier after it
  // ("600k", "45s", "100km", "$5k", "7pm"), not leet: "900k" is not "gook". Two digits
  // or more (one after '$'), then a unit; "5hit", "817ch" and "455hat" still read.
  bool is_quantity(size_t first, size_t last) const {
    static constexpr std::string_view kUnits[] = {
        "k", "m", "b", "bn", "mil", "s", "x", "h", "hr", "hrs", "min", "am", "pm", "st", "nd", "rd", "th", "km",
        "cm", "mm", "kg", "g", "mg", "lb", "lbs", "l", "ml", "ft", "sqft", "kw", "kwh", "mw", "gb", "mb", "tb", "yr",
        "yrs", "mph", "kph", "ha", "ppl", "pc", "pcs", "pts", "v", "hz"};
    size_t k = first;
    const bool money = k < last && word_[k].kind == Kind::symbol && src_[word_[k].begin] == '$';
    if (money) ++k;
    const size_t digits_from = k;
    while (k < last && word_[k].kind == Kind::digit) ++k;
    if (k - digits_from < (money ? 1u : 2u) || last - k > 4) return false;
    char unit[4];
    size_t n = 0;
    for (; k < last; ++k) {
      if (word_[k].kind != Kind::letter) return false;
      unit[n++] = word_[k].c;
    }
    return std::find(std::begin(kUnits), std::end(kUnits), std::string_view(unit, n)) != std::end(kUnits);
  }

  // Grawlix mixes letter-like symbols with masks ("f@#k", "f$%k"): in a run of symbols
  // that holds a mask, all are mask, but one that opens the word still masks a first
  // letter ("$#!t" is "s*t").
  void mask_grawlix(size_t first, size_t last) {
    for (size_t k = first; k < last;) {
      if (word_[k].kind != Kind::symbol) {
        ++k;
        continue;
      }
      size_t end = k;
      bool has_mask = false;
      while (end < last && word_[end].kind == Kind::symbol) has_mask |= word_[end++].c == kMask;
      if (has_mask)
        for (size_t j = k == first ? k + 1 : k; j < end; ++j) word_[j].c = kMask;
      k = end;
    }
  }

  // Whether word_[first, last) is a code whose digits are digits, not leet: a Canadian
  // postal code ("N9A 4S5" is not "nga ass", "L4L-1A1" not the spam term "l4l"), and
  // an upper-case name with a number after it ("Bus WO6", "QEW401"). Codes are told by
  // shape and context alone, so leet written in lower case ("wo6", "a55") still reads;
  // the cost is upper-case leet ending in digits ("A55").
  bool is_code(size_t first, size_t last) const {
    const size_t n = last - first;
    if (n < 2 || n > 6) return false;
    for (size_t k = first; k < last; ++k)
      if (word_[k].end != word_[k].begin + 1 || !is_alnum(src_[word_[k].begin])) return false;
    const size_t b = word_[first].begin, e = word_[last - 1].end;
    if (n == 6 && is_postal_code(b, b + 3)) return true;
    // Half a postal code is one with the other half beside it, up to three spaces or
    // hyphens between (as the packs' postal-code regexes read them).
    const auto is_gap = [&](size_t at) { return src_[at] == ' ' || src_[at] == '-'; };
    if (n == 3) {
      size_t ldu = e;
      while (ldu < src_.size() && ldu - e < 3 && is_gap(ldu)) ++ldu;
      if (ldu > e && ldu + 3 <= src_.size() && (ldu + 3 == src_.size() || !is_alnum(src_[ldu + 3])) &&
          is_postal_code(b, ldu))
        return true;
      size_t fsa_end = b;
      while (fsa_end > 0 && b - fsa_end < 3 && is_gap(fsa_end - 1)) --fsa_end;
      if (fsa_end < b && fsa_end >= 3 && (fsa_end == 3 || !is_alnum(src_[fsa_end - 4])) &&
          is_postal_code(fsa_end - 3, b))
        return true;
    }
    size_t k = b;
    while (k < e && src_[k] >= 'A' && src_[k] <= 'Z') ++k;
    if (k == b || k == e) return false;
    while (k < e && is_digit(src_[k])) ++k;
    return k == e;
  }

  static bool is_digit(char c) { return c >= '0' && c <= '9'; }
  static bool is_alnum(char c) { return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z'); }

  // Whether the source holds a Canadian postal code with its first half at `fsa` and
  // its second at `ldu`: letter digit letter, digit letter digit, in either case, and
  // only the letters Canada Post uses ("F4G 1A1" is no postal code, so "f4g" stays leet).
  bool is_postal_code(size_t fsa, size_t ldu) const {
    const auto letter = [&](size_t at, std::string_view allowed) {
      const char c = src_[at];
      return c >= 'a' && c <= 'z' ? allowed.find(static_cast<char>(c - 'a' + 'A')) != std::string_view::npos
                                  : allowed.find(c) != std::string_view::npos;
    };
    constexpr std::string_view kFirst = "ABCEGHJKLMNPRSTVXY", kOther = "ABCEGHJKLMNPRSTVWXYZ";
    return letter(fsa, kFirst) && is_digit(src_[fsa + 1]) && letter(fsa + 2, kOther) && is_digit(src_[ldu]) &&
           letter(ldu + 1, kOther) && is_digit(src_[ldu + 2]);
  }

  // Letters spelled out one by one ("f u c k", "f.u.c.k", "f-u-c-k") form one word.
  void flush_singles() {
    const auto& s = singles_;
    size_t i = 0;
    while (i < s.size()) {
      size_t run_end = i + 1;
      while (run_end < s.size() && (run_end == i + 1 || s[run_end].separator_before == s[i + 1].separator_before))
        ++run_end;
      const bool spaced = i + 1 < s.size() && s[i + 1].separator_before == ' ';
      // In "i f u c k" a leading "a" or "i" is more likely a word of its own.
      if (spaced && run_end - i >= 4 && (s[i].c == 'a' || s[i].c == 'i')) {
        emit_word(i, i + 1);
        ++i;
      }
      if (run_end - i >= 3 && is_text_speak(i, run_end)) {
        // Not a spelled-out word: each letter is a word. Every later run starting
        // inside this one would be text speak too, so skip them all (linear time).
        for (; i < run_end; ++i) emit_word(i, i + 1);
        continue;
      }
      if (run_end - i < 3) run_end = i + 1;  // too short to be a spelled-out word
      emit_word(i, run_end);
      i = run_end;
    }
    singles_.clear();
  }

  // "u r a loser", "r u ok": one-letter words of text speak, not a word spelled out.
  bool is_text_speak(size_t from, size_t to) const {
    for (size_t k = from; k < to; ++k)
      if (std::string_view("abciknoruy").find(singles_[k].c) == std::string_view::npos) return false;
    return true;
  }

  void emit_word(size_t from, size_t to) {
    for (size_t k = from; k < to; ++k) emit(singles_[k].c, singles_[k].begin);
    emit(' ', singles_[to - 1].end);
  }

  std::string_view src_;
  Skeleton& out_;
  std::vector<WordChar>& word_;
  std::vector<Single>& singles_;
  char* bytes_;
  uint32_t* begin_;
  uint16_t* runs_;
  size_t size_ = 0, cap_ = 0;
  alignas(16) unsigned char tail_[2 * kBlock];
  size_t tail_from_ = 0;
  size_t word_size_ = 0;
  bool has_letter_ = false;
  bool has_digit_ = false;
  char separator_ = ' ';
};

struct Scratch {
  std::vector<WordChar> word;
  std::vector<Single> singles;
};

Scratch& thread_scratch() {
  thread_local Scratch scratch;
  return scratch;
}

}  // namespace

void build_skeleton(std::string_view source, Skeleton& out) {
  Scratch& s = thread_scratch();
  Builder(source, out, s.word, s.singles).run();
}

std::string term_skeleton(std::string_view term, std::vector<uint16_t>* run_lengths) {
  Skeleton sk;
  build_skeleton(term, sk);
  // Strip the framing spaces.
  const size_t b = 1, e = sk.size > 1 ? sk.size - 1 : 1;
  if (run_lengths)
    run_lengths->assign(sk.run_length.begin() + static_cast<long>(b), sk.run_length.begin() + static_cast<long>(e));
  return std::string(sk.view().substr(b, e - b));
}

void mark_for_scan(Skeleton& sk) {
  // Sixteen bytes at a time: at -O2 the compiler leaves a plain loop byte by byte.
  auto* bytes = reinterpret_cast<unsigned char*>(sk.bytes.data() + sk.offset);
  const __m128i bit = _mm_set1_epi8(static_cast<char>(kScanBit));
  size_t i = 0;
  for (; i + kBlock <= sk.size; i += kBlock) {
    auto* at = reinterpret_cast<__m128i*>(bytes + i);
    _mm_storeu_si128(at, _mm_xor_si128(_mm_loadu_si128(at), bit));
  }
  for (; i < sk.size; ++i) bytes[i] ^= kScanBit;
}

}  // namespace civicsift::text
