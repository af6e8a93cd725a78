// policy: term templates. A term may spell its variants compactly:
//   "(i|we) (will|'ll|am going to) (kill|hurt) (you|him|her)"   alternation
//   "you (are|r) (a )?(idiot|moron)"                             optional group
//   "councill?ors?"                                              optional letter
// A template term compiles to one regex on the skeleton (measured: 25,000 expanded
// literals made a database 5x slower than the same templates as regexes). An allow
// phrase of a few spellings is expanded into literals; of many, it is one regex too.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace civicsift {

inline constexpr size_t kMaxTemplateExpansions = 20000;

// All spellings of `term`, or an error message (unbalanced parentheses, too many expansions).
std::variant<std::vector<std::string>, std::string> expand_template(std::string_view term);

// Whether `term` uses template syntax at all.
bool is_template(std::string_view term);

// Why `term` is not a well-formed template (unbalanced parentheses, '?' with nothing
// before it, an empty template), or nullopt.
std::optional<std::string> template_syntax_error(std::string_view term);

}  // namespace civicsift
