#include "classify/verdict_writer.h"

#include <emmintrin.h>

#include <algorithm>
#include <charconv>

namespace civicsift {

using namespace std::string_view_literals;  // literals appended without a strlen

namespace {

// Offsets are written with to_chars: a format string parsed per match cost more than
// the digits.
void append_number(std::string& out, uint64_t n) {
  char digits[20];
  const auto end = std::to_chars(digits, digits + sizeof digits, n).ptr;
  out.append(digits, end);
}

// Length of the valid UTF-8 sequence at s[i], or 0.
size_t utf8_sequence(std::string_view s, size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  size_t n;
  uint32_t min;
  if (b0 >= 0xC2 && b0 <= 0xDF) n = 2, min = 0x80;
  else if (b0 >= 0xE0 && b0 <= 0xEF) n = 3, min = 0x800;
  else if (b0 >= 0xF0 && b0 <= 0xF4) n = 4, min = 0x10000;
  else return 0;
  if (i + n > s.size()) return 0;
  uint32_t cp = b0 & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

// Where the run of bytes JSON takes as they are (printable ASCII but '"' and '\\')
// that starts at s[i] ends: sixteen bytes at a time, then byte by byte. As signed
// bytes, control characters and every byte >= 0x80 are both below 0x20.
size_t plain_run_end(std::string_view s, size_t i) {
  const __m128i below = _mm_set1_epi8(0x20), quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\');
  for (; i + 16 <= s.size(); i += 16) {
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s.data() + i));
    const __m128i special =
        _mm_or_si128(_mm_cmplt_epi8(b, below), _mm_or_si128(_mm_cmpeq_epi8(b, quote), _mm_cmpeq_epi8(b, backslash)));
    if (const auto mask = static_cast<unsigned>(_mm_movemask_epi8(special))) return i + static_cast<size_t>(__builtin_ctz(mask));
  }
  for (; i < s.size(); ++i) {
    const auto d = static_cast<unsigned char>(s[i]);
    if (d < 0x20 || d >= 0x80 || d == '"' || d == '\\') break;
  }
  return i;
}

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  out.push_back('"');
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      const size_t j = plain_run_end(s, i + 1);  // copy runs of plain ASCII at once
      out.append(s.data() + i, j - i);
      i = j;
      continue;
    }
    if (c < 0x80) {
      switch (c) {
        case '"': out += "\\\""sv; break;
        case '\\': out += "\\\\"sv; break;
        case '\n': out += "\\n"sv; break;
        case '\r': out += "\\r"sv; break;
        case '\t': out += "\\t"sv; break;
        default:
          out += "\\u00"sv;
          out.push_back(hex[c >> 4]);
          out.push_back(hex[c & 0xF]);
      }
      ++i;
      continue;
    }
    const size_t n = utf8_sequence(s, i);
    if (n == 0) {
      out += "\\ufffd"sv;
      ++i;
    } else if (n == 3 && c == 0xE2 && static_cast<unsigned char>(s[i + 1]) == 0x80 &&
               (static_cast<unsigned char>(s[i + 2]) == 0xA8 || static_cast<unsigned char>(s[i + 2]) == 0xA9)) {
      out += static_cast<unsigned char>(s[i + 2]) == 0xA8 ? "\\u2028" : "\\u2029";
      i += 3;
    } else {
      out.append(s.data() + i, n);
      i += n;
    }
  }
  out.push_back('"');
}

std::string redact(std::string_view text, const Verdict& verdict) {
  // Past the hit cap the matches may miss personal data: nothing of the text is shown.
  if (verdict.hits_capped) return "[withheld: too many matches to redact]";
  std::string out;
  out.reserve(text.size());
  size_t cursor = 0;
  for (const Match& m : verdict.matches) {  // ordered by start
    const size_t start = std::min<size_t>(m.start, text.size()), end = std::min<size_t>(m.end, text.size());
    if (start >= cursor) {
      out.append(text, cursor, start - cursor);
      out += '[';
      out += to_string(verdict.policy->rule(m.rule).category);
      out += ']';
      cursor = end;
    } else if (end > cursor) {
      cursor = end;  // overlaps the span just replaced: one replacement covers both
    }
  }
  out.append(text, std::min(cursor, text.size()));
  return out;
}

void write_verdict(std::string& out, const Comment& comment, const Verdict& verdict, const VerdictOptions& options) {
  out += "{\"id\":"sv;
  append_json_string(out, comment.id);
  out += ",\"tenant\":"sv;
  append_json_string(out, comment.tenant);
  out += ",\"action\":\""sv;
  out += to_string(verdict.action);
  out += "\",\"categories\":["sv;
  bool first = true;
  for (size_t c = 0; c < kCategoryCount; ++c) {
    if (!(verdict.categories & (1u << c))) continue;
    if (!first) out.push_back(',');
    first = false;
    out.push_back('"');
    out += to_string(static_cast<Category>(c));
    out.push_back('"');
  }
  out += "],\"matches\":["sv;
  first = true;
  const size_t listed = options.max_matches ? std::min(options.max_matches, verdict.matches.size()) : verdict.matches.size();
  for (size_t i = 0; i < listed; ++i) {
    const Match& m = verdict.matches[i];
    const RuleSpec& r = verdict.policy->rule(m.rule);
    if (!first) out.push_back(',');
    first = false;
    out += "{\"rule\":"sv;
    append_json_string(out, r.id);
    out += ",\"category\":\""sv;
    out += to_string(r.category);
    out += "\",\"clause\":"sv;
    append_json_string(out, r.clause);
    out += ",\"start\":"sv;
    append_number(out, m.start);
    out += ",\"end\":"sv;
    append_number(out, m.end);
    out.push_back('}');
  }
  out.push_back(']');
  if (listed < verdict.matches.size()) {
    out += ",\"matches_omitted\":"sv;
    append_number(out, verdict.matches.size() - listed);
  }
  if (verdict.hits_capped) out += ",\"hits_capped\":true"sv;
  out += ",\"routes\":["sv;
  first = true;
  for (const auto& route : verdict.routes) {
    if (!first) out.push_back(',');
    first = false;
    append_json_string(out, route);
  }
  out += ']';
  if (options.redacted_text) {
    out += ",\"redacted_text\":"sv;
    append_json_string(out, redact(comment.text, verdict));
  }
  out += ",\"policy\":"sv;
  append_json_string(out, verdict.policy->label());
  out.push_back('}');
}

void write_error(std::string& out, const DecodeError& error, std::optional<uint64_t> line) {
  out.push_back('{');
  if (line) {
    out += "\"line\":"sv;
    append_number(out, *line);
    out.push_back(',');
  }
  if (!error.id.empty()) {
    out += "\"id\":"sv;
    append_json_string(out, error.id);
    out.push_back(',');
  }
  out += "\"error\":{\"code\":\""sv;
  out += to_string(error.code);
  out += "\",\"message\":"sv;
  append_json_string(out, error.message);
  out += "}}"sv;
}

}  // namespace civicsift
