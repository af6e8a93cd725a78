// policy: single-word terms as their grawlix-masked spellings read in the skeleton:
// one interior block of letters replaced by text::kMask, first and last letters kept,
// at least two letters kept ("f*ck", "fu*k", "f**k" for "fuck"). The block may begin or
// end inside a doubled letter ("a*shole", "bul*shit"). Where only the first and last
// letters show, each hidden letter needs a mask character of its own: "d*e" is "die"
// or "dye" far more often than a slur, "f*k" reads as nothing, "f**k" and "c**t" still do.
// Two masked blocks read too ("f*ck*ng", "m*therf*cker"), each hiding whole letters.
//
// These spellings are looked up after the scan, only for the skeleton words that hold
// a mask, instead of compiling each as a Hyperscan literal: about 7,000 of a tenant's
// 10,500 literals were masked spellings, half its database's size, which every comment
// paid for in cache misses (measured: the five tenants' scans 5% faster without them,
// start-up from the cache a quarter faster).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace civicsift {

class MaskedTerms {
 public:
  // A term's skeleton (ASCII letters, 3 to 32 of them) with the run length of each
  // letter (text::term_skeleton), and the rule it belongs to. Throws
  // std::invalid_argument for anything else.
  void add(std::string_view skeleton, std::span<const uint16_t> runs, uint16_t rule);

  // Calls visit(skeleton, runs, rule) for every term kept, in the order add() took
  // them: adding them again in that order rebuilds this (policy snapshots).
  template <typename Visit>
  void for_each(Visit&& visit) const;

  bool empty() const { return count_ == 0; }
  size_t size() const { return count_; }

  // Calls `on_match(rule)` for every term that `word` (one skeleton word, unflipped:
  // letters with one kMask inside) is a masked spelling of, when the word's letter
  // runs `word_runs` (one per byte of `word`) fit the term's: a letter the term doubles
  // must be doubled, and a single one may be stretched for emphasis (3 or more), as
  // for unmasked terms. A rule comes once per term it matches.
  template <typename OnMatch>
  void match(std::string_view word, const uint16_t* word_runs, OnMatch&& on_match) const;

  // As match(), but calls `on_match(letters, runs)` with each term `word` spells: its
  // skeleton letters and their run lengths.
  template <typename OnMatch>
  void match_spellings(std::string_view word, const uint16_t* word_runs, OnMatch&& on_match) const;

  // Whether a skeleton word of `length` bytes can be a masked spelling at all: one mask
  // and at least one letter each side of it, within the longest term.
  static bool possible_length(size_t length) { return length >= 3 && length <= kMaxLetters; }

  // Long enough for the lexicons' longest words ("unfuckingbelievable", 19).
  static constexpr size_t kMinLetters = 3, kMaxLetters = 32;

 private:
  struct Term {
    uint32_t begin;   // letters at letters_[begin, begin + length), runs at runs_[begin, ...)
    uint8_t length;
    uint16_t rule;
  };
  // Calls `visit(term)` for every term `word` is a masked spelling of.
  template <typename Visit>
  void visit_matches(std::string_view word, const uint16_t* word_runs, Visit&& visit) const;
  static size_t bucket(char first, char last) { return static_cast<size_t>(first - 'a') * 26 + static_cast<size_t>(last - 'a'); }
  bool fits(const Term& t, std::string_view prefix, std::string_view suffix, const uint16_t* prefix_runs,
            const uint16_t* suffix_runs, uint16_t mask_run) const;
  // Whether `t` is `prefix`, hidden letters, `middle`, hidden letters, `suffix`, each
  // visible letter's run fitting as for unmasked terms.
  bool fits_two(const Term& t, std::string_view prefix, std::string_view middle, std::string_view suffix,
                const uint16_t* prefix_runs, const uint16_t* middle_runs, const uint16_t* suffix_runs) const;

  std::string letters_;
  std::vector<uint16_t> runs_;
  std::array<std::vector<Term>, 26 * 26> by_ends_;  // by first and last letter
  size_t count_ = 0;
};

template <typename OnMatch>
void MaskedTerms::match(std::string_view word, const uint16_t* word_runs, OnMatch&& on_match) const {
  visit_matches(word, word_runs, [&](const Term& t) { on_match(t.rule); });
}

template <typename OnMatch>
void MaskedTerms::match_spellings(std::string_view word, const uint16_t* word_runs, OnMatch&& on_match) const {
  visit_matches(word, word_runs, [&](const Term& t) {
    on_match(std::string_view(letters_).substr(t.begin, t.length), runs_.data() + t.begin);
  });
}

template <typename Visit>
void MaskedTerms::visit_matches(std::string_view word, const uint16_t* word_runs, Visit&& visit) const {
  const size_t mask = word.find('*');
  if (mask == std::string_view::npos || mask == 0 || mask + 1 >= word.size()) return;
  const std::string_view prefix = word.substr(0, mask);
  const size_t second = word.find('*', mask + 1);
  const std::string_view suffix = word.substr((second == std::string_view::npos ? mask : second) + 1);
  const char first = prefix.front(), last = suffix.empty() ? '\0' : suffix.back();
  if (first < 'a' || first > 'z' || last < 'a' || last > 'z') return;
  if (second == std::string_view::npos) {
    for (const Term& t : by_ends_[bucket(first, last)])
      if (fits(t, prefix, suffix, word_runs, word_runs + mask + 1, word_runs[mask])) visit(t);
    return;
  }
  const std::string_view middle = word.substr(mask + 1, second - mask - 1);
  if (middle.empty() || suffix.find('*') != std::string_view::npos) return;  // two masked blocks at most
  for (const Term& t : by_ends_[bucket(first, last)])
    if (fits_two(t, prefix, middle, suffix, word_runs, word_runs + mask + 1, word_runs + second + 1)) visit(t);
}

template <typename Visit>
void MaskedTerms::for_each(Visit&& visit) const {
  std::vector<Term> all;
  all.reserve(count_);
  for (const auto& terms : by_ends_) all.insert(all.end(), terms.begin(), terms.end());
  std::sort(all.begin(), all.end(), [](const Term& a, const Term& b) { return a.begin < b.begin; });
  for (const Term& t : all)
    visit(std::string_view(letters_).substr(t.begin, t.length), std::span<const uint16_t>(runs_.data() + t.begin, t.length),
          t.rule);
}

}  // namespace civicsift
