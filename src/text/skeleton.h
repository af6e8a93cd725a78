// The skeleton: a normalised view of a comment that obfuscation cannot hide from.
//
// Lower-cased; accents, full-width forms and look-alike letters folded to ASCII;
// zero-width characters dropped; leetspeak inside words mapped (sh1t, $hit, a55);
// letters spaced or dotted one by one joined (f.u.c.k); grawlix masks kept as '*';
// runs of one letter collapsed to a single byte whose run length is remembered, so
// "fuuuck" reads "fuck" while "as" still differs from "ass". Words are separated by
// one space and the skeleton starts and ends with a space, so a whole-word term is
// the plain literal " term ".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace civicsift::text {

inline constexpr char kMask = '*';

struct Skeleton {
  // bytes[0, offset) is whatever the caller put first (the classifier puts the raw
  // text and a newline there, so one buffer holds all it scans); the skeleton
  // follows: bytes[offset, offset + size). Buffers keep their capacity across calls.
  std::string bytes;
  size_t offset = 0;
  size_t size = 0;
  // Per skeleton byte: the first source byte it came from. For the space after a word,
  // one past the word's last source byte, so " word " maps back to
  // [source_begin[first letter], source_begin[space after]).
  std::vector<uint32_t> source_begin;
  std::vector<uint16_t> run_length;  // per skeleton byte: how many source letters it stands for

  std::string_view view() const { return {bytes.data() + offset, size}; }
};

// Builds the skeleton of `source` into `out` after its first `out.offset` bytes,
// which are kept. Invalid UTF-8 sequences act as separators: any bytes are accepted.
void build_skeleton(std::string_view source, Skeleton& out);

// In the classifier's scan buffer every skeleton byte has this bit flipped, and the
// compiled skeleton patterns are written the same way (a bijection: nothing can
// collide). The skeleton's ASCII then sits in the upper half: raw-text regexes find
// nothing to start on in the skeleton part, and skeleton literals nothing in the raw
// text, so the one scan does not do half its work twice.
inline constexpr unsigned char kScanBit = 0x80;

// Flips kScanBit in every byte of the skeleton part of `sk.bytes`.
void mark_for_scan(Skeleton& sk);

// Whether the letters of a skeleton match those of a term, by their run lengths: each
// letter appears as often as in the term, or is stretched for emphasis (3+ times), so
// "fuuuck" is "fuck" but "assess" is not "asses". `want[k]` 0: any (spaces, masks).
inline bool runs_fit(const uint16_t* want, const uint16_t* got, size_t n) {
  for (size_t k = 0; k < n; ++k)
    if (want[k] != 0 && got[k] != want[k] && (got[k] < 3 || got[k] < want[k])) return false;
  return true;
}

// The skeleton of a policy term without the surrounding spaces, e.g. "f u c k" -> "fuck".
std::string term_skeleton(std::string_view term, std::vector<uint16_t>* run_lengths = nullptr);

}  // namespace civicsift::text
