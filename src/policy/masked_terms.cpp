#include "policy/masked_terms.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "text/skeleton.h"

namespace civicsift {

void MaskedTerms::add(std::string_view skeleton, std::span<const uint16_t> runs, uint16_t rule) {
  // The compiler only passes such terms; the buckets rely on it.
  const bool letters = std::all_of(skeleton.begin(), skeleton.end(), [](char c) { return c >= 'a' && c <= 'z'; });
  if (!letters || skeleton.size() < kMinLetters || skeleton.size() > kMaxLetters || runs.size() != skeleton.size())
    throw std::invalid_argument("masked term: 3 to 32 ASCII letters, one run length each");
  const char first = skeleton.front(), last = skeleton.back();
  auto& bucket_terms = by_ends_[bucket(first, last)];
  for (const Term& t : bucket_terms)  // the same term twice in a rule (two lexicons, say)
    if (t.rule == rule && std::string_view(letters_).substr(t.begin, t.length) == skeleton &&
        std::equal(runs.begin(), runs.end(), runs_.begin() + t.begin))
      return;
  bucket_terms.push_back({static_cast<uint32_t>(letters_.size()), static_cast<uint8_t>(skeleton.size()), rule});
  letters_.append(skeleton);
  runs_.insert(runs_.end(), runs.begin(), runs.end());
  ++count_;
}

bool MaskedTerms::fits(const Term& t, std::string_view prefix, std::string_view suffix, const uint16_t* prefix_runs,
                       const uint16_t* suffix_runs, uint16_t mask_run) const {
  // Both ends are letters the term has; the mask hides whole letters between them, or
  // part of a doubled letter at its edge ("a*shole", "bul*shit"), or both, at least one.
  if (prefix.size() + suffix.size() > t.length) return false;
  const char* letters = letters_.data() + t.begin;
  const uint16_t* runs = runs_.data() + t.begin;
  const size_t suffix_at = t.length - suffix.size();
  if (std::memcmp(letters, prefix.data(), prefix.size()) != 0 ||
      std::memcmp(letters + suffix_at, suffix.data(), suffix.size()) != 0)
    return false;
  // The letters away from the mask fit as for unmasked terms; the two beside it fit or
  // are the visible part of a doubled letter.
  const size_t last = prefix.size() - 1;
  if (!text::runs_fit(runs, prefix_runs, last) || !text::runs_fit(runs + suffix_at + 1, suffix_runs + 1, suffix.size() - 1))
    return false;
  const auto partial = [](uint16_t want, uint16_t got) { return got < want && want >= 2; };
  const bool prefix_partial = partial(runs[last], prefix_runs[last]);
  const bool suffix_partial = partial(runs[suffix_at], suffix_runs[0]);
  if (!prefix_partial && !text::runs_fit(runs + last, prefix_runs + last, 1)) return false;
  if (!suffix_partial && !text::runs_fit(runs + suffix_at, suffix_runs, 1)) return false;
  if (suffix_at == prefix.size() && !prefix_partial && !suffix_partial) return false;  // nothing hidden
  if (prefix.size() > 1 || suffix.size() > 1) return true;
  // Only the first and last letters show: one mask character per hidden letter.
  size_t hidden = 0;  // letters, doubled ones counted twice
  for (size_t i = prefix.size(); i < suffix_at; ++i) hidden += runs[i];
  if (prefix_partial) hidden += runs[last] - prefix_runs[last];
  if (suffix_partial) hidden += runs[suffix_at] - suffix_runs[0];
  return mask_run >= hidden;
}

bool MaskedTerms::fits_two(const Term& t, std::string_view prefix, std::string_view middle, std::string_view suffix,
                           const uint16_t* prefix_runs, const uint16_t* middle_runs,
                           const uint16_t* suffix_runs) const {
  if (prefix.size() + middle.size() + suffix.size() + 2 > t.length) return false;  // a letter under each mask
  const char* letters = letters_.data() + t.begin;
  const uint16_t* runs = runs_.data() + t.begin;
  const size_t suffix_at = t.length - suffix.size();
  if (std::memcmp(letters, prefix.data(), prefix.size()) != 0 ||
      std::memcmp(letters + suffix_at, suffix.data(), suffix.size()) != 0 ||
      !text::runs_fit(runs, prefix_runs, prefix.size()) ||
      !text::runs_fit(runs + suffix_at, suffix_runs, suffix.size()))
    return false;
  for (size_t at = prefix.size() + 1; at + middle.size() < suffix_at; ++at)
    if (std::memcmp(letters + at, middle.data(), middle.size()) == 0 &&
        text::runs_fit(runs + at, middle_runs, middle.size()))
      return true;
  return false;
}

}  // namespace civicsift
