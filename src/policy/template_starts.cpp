#include "policy/template_starts.h"

#include <algorithm>
#include <deque>
#include <stdexcept>

namespace civicsift {
namespace {

// Deeper nesting than any template is refused rather than read recursively.
constexpr int kMaxDepth = 32;

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::optional<TemplateStarts> TemplateStarts::parse(std::string_view regex) {
  TemplateStarts t;
  t.regex_ = regex;
  size_t at = 0;
  try {
    t.parse_sequence(regex, at, 0);
  } catch (const std::invalid_argument&) {
    return std::nullopt;
  }
  if (at != regex.size()) return std::nullopt;
  return t;
}

// Reads elements up to the end of `regex` or of the group they are in ('|' or ')');
// returns the sequence's index in sequences_. Throws std::invalid_argument on
// anything the compiler does not write.
uint32_t TemplateStarts::parse_sequence(std::string_view regex, size_t& at, int depth) {
  if (depth > kMaxDepth) throw std::invalid_argument("nested too deep");
  // A group's alternatives are parsed before the sequence holding it is stored, so
  // the elements of one sequence are gathered here and appended together.
  std::vector<Element> elements;
  while (at < regex.size() && regex[at] != '|' && regex[at] != ')') {
    Element e;
    if (regex[at] == '(') {
      ++at;
      std::vector<uint32_t> alternatives;
      for (;;) {
        alternatives.push_back(parse_sequence(regex, at, depth + 1));
        if (at < regex.size() && regex[at] == '|') {
          ++at;
          continue;
        }
        break;
      }
      if (at >= regex.size() || regex[at] != ')') throw std::invalid_argument("unclosed group");
      ++at;
      // The alternatives' sequences are stored again side by side, so a group names
      // them by a range.
      e.first_alternative = static_cast<uint32_t>(sequences_.size());
      e.alternatives = static_cast<uint32_t>(alternatives.size());
      for (uint32_t a : alternatives) {
        const Sequence copy = sequences_[a];
        sequences_.push_back(copy);
      }
    } else if (regex.substr(at, 2) == "\\x" && at + 4 <= regex.size() && hex_digit(regex[at + 2]) >= 0 &&
               hex_digit(regex[at + 3]) >= 0) {
      e.byte = static_cast<int16_t>(hex_digit(regex[at + 2]) * 16 + hex_digit(regex[at + 3]));
      at += 4;
    } else {
      throw std::invalid_argument("not a template's regex");
    }
    // "??" (an optional letter after an optional break) is optional too.
    while (at < regex.size() && regex[at] == '?') {
      e.optional = true;
      ++at;
    }
    elements.push_back(e);
  }
  const Sequence sequence{static_cast<uint32_t>(elements_.size()), static_cast<uint32_t>(elements.size())};
  elements_.insert(elements_.end(), elements.begin(), elements.end());
  sequences_.push_back(sequence);
  return static_cast<uint32_t>(sequences_.size() - 1);
}

// `positions`: where `sequence` may end; on return, where it may then start (sorted,
// without repeats; empty when nowhere). `depth`: of the group the sequence is in, whose
// buffers (kept by the thread, so a scan allocates nothing once they have grown) it uses.
void TemplateStarts::starts_before(const Sequence& sequence, std::string_view data, std::vector<uint32_t>& positions,
                                   size_t depth) const {
  // A deque: growing it for a deeper group keeps the shallower ones' buffers in place.
  thread_local std::deque<std::vector<uint32_t>> buffers;
  if (buffers.size() < 2 * depth + 2) buffers.resize(2 * depth + 2);
  std::vector<uint32_t>& before = buffers[2 * depth];
  std::vector<uint32_t>& alternative = buffers[2 * depth + 1];
  for (uint32_t k = sequence.elements; k-- > 0 && !positions.empty();) {
    const Element& e = elements_[sequence.first_element + k];
    before.clear();
    if (e.byte >= 0) {
      for (uint32_t p : positions)
        if (p > 0 && static_cast<unsigned char>(data[p - 1]) == e.byte) before.push_back(p - 1);
    } else {
      for (uint32_t a = 0; a < e.alternatives; ++a) {
        alternative = positions;
        starts_before(sequences_[e.first_alternative + a], data, alternative, depth + 1);
        before.insert(before.end(), alternative.begin(), alternative.end());
      }
    }
    if (e.optional) before.insert(before.end(), positions.begin(), positions.end());
    std::sort(before.begin(), before.end());
    before.erase(std::unique(before.begin(), before.end()), before.end());
    positions.swap(before);
  }
}

std::optional<uint32_t> TemplateStarts::leftmost_start(std::string_view data, uint32_t end) const {
  if (sequences_.empty() || end > data.size()) return std::nullopt;
  thread_local std::vector<uint32_t> positions;
  positions.assign(1, end);
  starts_before(sequences_.back(), data, positions, 0);
  if (positions.empty()) return std::nullopt;
  return positions.front();
}

}  // namespace civicsift
