#include "classify/validators.h"

#include <algorithm>
#include <cctype>
#include <iterator>

namespace civicsift::validators {

namespace {

// " RR 0001", "RT0001": the program account after a Canada Revenue Agency business number.
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// " RR 0001", "RT0001": the program account after a Canada Revenue Agency business
// number (RR charities, RT sales tax, RC corporate tax, RP payroll, RM import).
bool is_program_account(std::string_view after) {
  size_t i = 0;
  if (i < after.size() && after[i] == ' ') ++i;
  if (i + 2 > after.size() || (after[i] | 0x20) != 'r') return false;
  if (std::string_view("rtcpm").find(static_cast<char>(after[i + 1] | 0x20)) == std::string_view::npos) return false;
  i += 2;
  if (i < after.size() && after[i] == ' ') ++i;
  for (size_t k = 0; k < 4; ++k, ++i)
    if (i >= after.size() || !is_digit(after[i])) return false;
  return true;
}

// One past the last digit of `span`, or 0 when it holds none.
size_t end_of_last_number(std::string_view span) {
  size_t end = span.size();
  while (end > 0 && !is_digit(span[end - 1])) --end;
  return end;
}

// "today.Shop local": a sentence that starts without a space after the full stop, not
// a host. A bare host (no scheme, "www." or '@') whose last label is capitalised, as a
// word opening a sentence, after a lower-case letter or digit. "Amazon.com",
// "CHEAP.SHOP" and "Deals.shop" stay hosts.
bool is_run_on_sentence(std::string_view span) {
  const auto lower = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (span.find("://") != std::string_view::npos || span.find('@') != std::string_view::npos) return false;
  if (span.size() >= 4 && (span[0] | 0x20) == 'w' && (span[1] | 0x20) == 'w' && (span[2] | 0x20) == 'w' &&
      span[3] == '.')
    return false;
  const size_t dot = span.rfind('.');
  if (dot == std::string_view::npos || dot == 0 || dot + 2 >= span.size() || !lower(span[dot - 1])) return false;
  if (span[dot + 1] < 'A' || span[dot + 1] > 'Z') return false;
  for (size_t i = dot + 2; i < span.size(); ++i)
    if (span[i] < 'a' || span[i] > 'z') return false;
  return true;
}

}  // namespace

bool luhn(std::string_view span, std::string_view after) {
  int digits[32];
  int n = 0;
  for (char c : span) {
    if (c >= '0' && c <= '9') {
      if (n == 32) return false;
      digits[n++] = c - '0';
    }
  }
  if (n < 9 || n > 19) return false;
  // Nine digits ending in 000 is an amount grouped by spaces ("125 000 000 $", as French
  // writes it), about one in ten of which passes the sum, far likelier than such a SIN.
  if (n == 9 && digits[6] == 0 && digits[7] == 0 && digits[8] == 0) return false;
  // No SIN begins with 8 (business numbers do) or is followed by a program account; no
  // card number begins with 0 (bus times, "0715 0745 0815 0845"), and thirteen digits
  // beginning 978 or 979 are an ISBN.
  if (n == 9 && (digits[0] == 8 || is_program_account(after))) return false;
  if (n >= 12 && digits[0] == 0) return false;
  if (n == 13 && digits[0] == 9 && digits[1] == 7 && (digits[2] == 8 || digits[2] == 9)) return false;
  int sum = 0;
  for (int i = 0; i < n; ++i) {
    int d = digits[n - 1 - i];
    if (i % 2 == 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 == 0;
}

bool phone(std::string_view span, const std::vector<std::string>& allowed) {
  std::string digits;
  for (size_t i = 0; i < span.size(); ++i) {
    const char c = static_cast<char>(std::tolower(static_cast<unsigned char>(span[i])));
    if (c == 'x' || c == 'e') break;  // "x123", "ext. 123": the extension is not the number
    if (c >= '0' && c <= '9') digits.push_back(c);
  }
  if (digits.size() == 11 && digits[0] == '1') digits.erase(0, 1);
  if (std::find(allowed.begin(), allowed.end(), digits) != allowed.end()) return false;
  if (digits.size() != 10) return false;
  // Toll-free numbers (800, 833, 844, 855, 866, 877, 888) belong to organisations, such as
  // helplines and agencies, never to a private person.
  if (digits[0] == '8' && digits[1] == digits[2] && digits[1] != '1' && digits[1] != '2' && digits[1] != '9')
    return false;
  const bool area_ok = digits[0] >= '2' && !(digits[1] == '1' && digits[2] == '1');
  const bool exchange_ok = digits[3] >= '2' && !(digits[4] == '1' && digits[5] == '1');
  return area_ok && exchange_ok;
}

bool domain(std::string_view span, const std::vector<std::string>& allowed) {
  if (is_run_on_sentence(span)) return false;
  // Lower-case, read " dot "/"(dot)"/"[dot]" as '.', " at "/"(at)"/'＠' as '@', drop spaces.
  std::string s;
  for (char c : span) s.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  auto replace_all = [&s](std::string_view from, std::string_view to) {
    for (size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size())
      s.replace(pos, from.size(), to);
  };
  for (std::string_view dot : {"[dot]", "(dot)", "{dot}", " dot "}) replace_all(dot, ".");
  for (std::string_view at : {"[at]", "(at)", "{at}", " at ", "\xef\xbc\xa0" /* full-width */}) replace_all(at, "@");
  s.erase(std::remove_if(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c); }), s.end());
  if (auto scheme = s.find("://"); scheme != std::string::npos) s.erase(0, scheme + 3);
  if (auto at = s.rfind('@'); at != std::string::npos) s.erase(0, at + 1);
  if (auto end = s.find_first_of("/:?#"); end != std::string::npos) s.erase(end);
  while (!s.empty() && s.back() == '.') s.pop_back();
  if (s.rfind("www.", 0) == 0) s.erase(0, 4);
  if (s.empty()) return false;
  for (const auto& d : allowed) {
    if (s == d) return false;
    if (s.size() > d.size() && s.compare(s.size() - d.size(), d.size(), d) == 0 &&
        s[s.size() - d.size() - 1] == '.')
      return false;
  }
  return true;
}

bool short_code(std::string_view span) {
  const size_t end = end_of_last_number(span);
  size_t begin = end;
  while (begin > 0 && is_digit(span[begin - 1])) --begin;
  if (end - begin < 4 || end - begin > 6) return false;
  // An amount ("to $5458") or a round count ("up to 5000 people") is no short code.
  // A phone number's last group ("1-800-222-8477", "1 800 222 8477"): the skeleton reads
  // "222" as "2", "to", but the short code's "2" is one digit.
  if (begin > 0 && (span[begin - 1] == '-' || span[begin - 1] == '.')) return false;
  size_t lead = 0;
  while (lead < span.size() && is_digit(span[lead])) ++lead;
  if (lead > 1 && lead < begin) return false;
  size_t sign = begin;
  while (sign > 0 && span[sign - 1] == ' ') --sign;
  if (sign > 0 && span[sign - 1] == '$') return false;
  return span.substr(end - 3, 3) != "000";
}

bool street_address(std::string_view span) {
  const size_t end = end_of_last_number(span);
  if (end == 0) return true;
  size_t at = end;
  if (at < span.size() && std::isalpha(static_cast<unsigned char>(span[at])) &&
      (at + 1 == span.size() || std::isspace(static_cast<unsigned char>(span[at + 1]))))
    ++at;  // a unit letter: "23b Elm St"
  while (at < span.size() && std::isspace(static_cast<unsigned char>(span[at]))) ++at;
  size_t word_end = at;
  while (word_end < span.size() && std::isalpha(static_cast<unsigned char>(span[word_end]))) ++word_end;
  std::string word(span.substr(at, word_end - at));
  for (char& c : word) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  // Prepositions and the like, then units and counts a number is often followed by, and
  // the time of day ("10:45 a.m. Road closures").
  static constexpr std::string_view kNotNames[] = {
      "on", "at", "to", "off", "for", "in", "into", "onto", "by", "of", "the", "from", "since", "until", "till", "and",
      "or", "via", "per", "near", "past", "over", "under", "after", "before", "minute", "minutes", "min", "mins", "hour",
      "hours", "hr", "hrs", "seconds", "km", "kms", "kilometres", "kilometers", "mile", "miles", "metres",
      "meters", "m", "block", "blocks", "day", "days", "week", "weeks", "year", "years", "line", "people", "times",
      "more", "less", "percent", "cars", "lanes", "exits", "stops", "a", "p", "am", "pm"};
  return std::find(std::begin(kNotNames), std::end(kNotNames), word) == std::end(kNotNames);
}

}  // namespace civicsift::validators
