// policy: where a template's match starts, read back from where it ends.
//
// The main database is scanned without Hyperscan's start-of-match tracking, which
// reports only where each match ends. Templates (a term's "(i|we) know where (you|u)
// live") were compiled a second time, with that tracking, into a database scanned
// again over any comment where one matched: about 4.6 µs for each such comment, most
// of it the tracking's set-up, however short the match. A template is a finite
// language (bytes, groups of alternatives, optional parts), so the start of a match
// ending at a given offset is found by reading the template backwards from there,
// over a few dozen bytes: the start Hyperscan's tracking would report (the leftmost).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace civicsift {

class TemplateStarts {
 public:
  // From a template's regex as the compiler writes it (compiler.cpp, template_regex):
  // bytes as \xNN, groups (a|b), '?' after a byte or group. nullopt for anything else.
  static std::optional<TemplateStarts> parse(std::string_view regex);

  // The leftmost offset from which the template matches data[start, end), or nullopt
  // when no match ends at `end`.
  std::optional<uint32_t> leftmost_start(std::string_view data, uint32_t end) const;

  // What parse() read: a snapshot stores it.
  const std::string& regex() const { return regex_; }

 private:
  // The template as a tree in one vector: a sequence is a run of elements, an element
  // a byte or a group of alternative sequences, either of them optional.
  struct Element {
    int16_t byte = -1;  // -1: a group
    bool optional = false;
    uint32_t first_alternative = 0, alternatives = 0;  // in sequences_ (groups)
  };
  struct Sequence {
    uint32_t first_element = 0, elements = 0;  // in elements_
  };
  uint32_t parse_sequence(std::string_view regex, size_t& at, int depth);
  void starts_before(const Sequence& sequence, std::string_view data, std::vector<uint32_t>& positions,
                     size_t depth) const;

  std::string regex_;
  std::vector<Element> elements_;
  std::vector<Sequence> sequences_;  // the whole template's is the last
};

}  // namespace civicsift
