// policy: term templates. A term may spell its variants compactly:
//   "(i|we) (will|'ll|am going to) (kill|hurt) (you|him|her)"   alternation
//   "you (are|r) (a )?(idiot|moron)"                             optional group
//   "councill?ors?"                                              optional letter
// Each expansion becomes one plain literal on the skeleton, so templates cost
// nothing at scan time; only their count is bounded.
#pragma once

#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace civicsift {

inline constexpr size_t kMaxTemplateExpansions = 20000;

// All spellings of `term`, or an error message (unbalanced parentheses, too many expansions).
std::variant<std::vector<std::string>, std::string> expand_template(std::string_view term);

}  // namespace civicsift
