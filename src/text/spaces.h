// text: the spaces other than ASCII's that comments hold (pasted from word processors
// and phones), as one list for the classifier's byte checks and the policies' regexes.
#pragma once

#include <cstddef>
#include <string_view>

namespace civicsift::text {

// How many bytes of UTF-8 at `s` are a space other than ASCII's (no-break, en, em,
// thin, ideographic, line and paragraph separators...), with `zero_width` set when it is
// one of the invisible ones (zero-width space and joiners, word joiner, BOM, soft
// hyphen); 0 for anything else.
inline size_t unicode_space(std::string_view s, bool& zero_width) {
  const auto b = [&](size_t i) { return i < s.size() ? static_cast<unsigned char>(s[i]) : 0u; };
  zero_width = false;
  if (b(0) == 0xC2 && (b(1) == 0xA0 || b(1) == 0x85)) return 2;          // U+00A0, U+0085
  if (b(0) == 0xC2 && b(1) == 0xAD) return zero_width = true, 2;         // U+00AD
  if (b(0) == 0xE1 && b(1) == 0x9A && b(2) == 0x80) return 3;            // U+1680
  if (b(0) == 0xE3 && b(1) == 0x80 && b(2) == 0x80) return 3;            // U+3000
  if (b(0) == 0xEF && b(1) == 0xBB && b(2) == 0xBF) return zero_width = true, 3;  // U+FEFF
  if (b(0) != 0xE2) return 0;
  if (b(1) == 0x80 && b(2) >= 0x80 && b(2) <= 0x8A) return 3;            // U+2000-U+200A
  if (b(1) == 0x80 && (b(2) == 0xA8 || b(2) == 0xA9 || b(2) == 0xAF)) return 3;  // U+2028, U+2029, U+202F
  if (b(1) == 0x81 && b(2) == 0x9F) return 3;                            // U+205F
  if ((b(1) == 0x80 && b(2) >= 0x8B && b(2) <= 0x8D) || (b(1) == 0x81 && b(2) == 0xA0))
    return zero_width = true, 3;                                         // U+200B-U+200D, U+2060
  return 0;
}

// The same characters as a byte regex (the raw-text database reads bytes), with ASCII's
// whitespace: what a policy regex's '^' skips.
inline constexpr std::string_view kAnySpaceRegex =
    R"((?:\s|\xC2[\xA0\x85\xAD]|\xE1\x9A\x80|\xE3\x80\x80|\xEF\xBB\xBF|\xE2\x80[\x80-\x8D\xA8\xA9\xAF]|\xE2\x81[\x9F\xA0]))";

}  // namespace civicsift::text
