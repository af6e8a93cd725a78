#include "classify/classifier.h"

#include <emmintrin.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "classify/validators.h"
#include "common/time.h"
#include "text/spaces.h"

#include <utf8proc.h>
#include <xxhash.h>

namespace civicsift {
namespace {

// Beyond this many hits of one database in one comment further hits are not recorded;
// the verdict already holds thousands of matches and memory stays bounded.
constexpr size_t kMaxHits = 1 << 16;

void record(ScanContext::Hits& hits, unsigned id, unsigned long long from, unsigned long long to) {
  if (hits.list.size() - hits.budget_start < kMaxHits)
    hits.list.push_back({id, static_cast<uint32_t>(from), static_cast<uint32_t>(to)});
  else hits.overflowed = true;
}

int on_match(unsigned id, unsigned long long from, unsigned long long to, unsigned, void* ctx) {
  auto* hits = static_cast<ScanContext::Hits*>(ctx);
  if (CompiledPolicy::own_pattern(hits->shared_ids, id)) record(*hits, id, from, to);
  return 0;
}

// The span is text[from, to); what follows it is context for the checks that need it.
bool validator_accepts(const RuleSpec& rule, const PolicySpec& spec, std::string_view text, size_t from, size_t to) {
  if (rule.validator == Validator::none) return true;
  const std::string_view span = text.substr(from, to - from);
  switch (rule.validator) {
    case Validator::none: return true;
    case Validator::luhn: return validators::luhn(span, text.substr(to));
    case Validator::phone: return validators::phone(span, spec.allow_phones);
    case Validator::domain: return validators::domain(span, spec.allow_domains);
    case Validator::short_code: return validators::short_code(span);
    case Validator::street_address: return validators::street_address(span);
  }
  return true;
}

// The digit database's hits are checked as they come, so only numbers that can reach
// the verdict take from its budget: padding with numbers that fail their rule's check
// (no phone's shape, a card's Luhn sum) cannot crowd out a phone number after them.
struct DigitScan {
  ScanContext::Hits* hits;
  const CompiledPolicy* policy;
  std::string_view text;
};

int on_digit_match(unsigned id, unsigned long long from, unsigned long long to, unsigned, void* ctx) {
  const auto* scan = static_cast<const DigitScan*>(ctx);
  if (!CompiledPolicy::own_pattern(scan->hits->shared_ids, id)) return 0;
  const RuleSpec& rule = scan->policy->rule(scan->policy->rules(scan->policy->pattern(id)).front());
  // A domain's span starts before the hit (address_start): checked with the others below.
  if (rule.validator != Validator::domain &&
      !validator_accepts(rule, scan->policy->spec(), scan->text, from, to))
    return 0;
  record(*scan->hits, id, from, to);
  return 0;
}

// The first scan of a two-part database (compiler.h: PolicyDatabases) records the
// hits of literals, whose starts follow from their lengths, and of term templates,
// whose starts are read back from their ends (TemplateStarts), and notes whether a
// raw-text regex matched: then its part with start-of-match tracking is scanned over
// the raw text, and records those.
struct FirstScan {
  ScanContext::Hits* hits;
  const CompiledPolicy* policy;
  std::string_view data;
  bool regex_matched;
};

int on_first_match(unsigned id, unsigned long long from, unsigned long long to, unsigned, void* ctx) {
  auto* scan = static_cast<FirstScan*>(ctx);
  if (!CompiledPolicy::own_pattern(scan->hits->shared_ids, id)) return 0;
  const PatternMeta& meta = scan->policy->pattern(id);
  if (needs_start_of_match(meta)) {
    scan->regex_matched = true;
  } else if (is_term_template(meta)) {
    if (scan->hits->templates.size() >= kMaxHits) {  // checked first: past the cap, no start is read
      scan->hits->overflowed = true;
      return 0;
    }
    const auto start = scan->policy->index().templates[meta.template_index].leftmost_start(
        scan->data, static_cast<uint32_t>(to));
    // Always found: TemplateStarts reads the language Hyperscan matched (its tests
    // compare the two on every template of the packs).
    if (start) scan->hits->templates.push_back({id, *start, static_cast<uint32_t>(to)});
  } else {
    record(*scan->hits, id, from, to);
  }
  return 0;
}

void scan_or_throw(const hs_database_t* db, const char* data, size_t size, hs_scratch_t* scratch,
                   match_event_handler on_event, void* ctx) {
  if (hs_scan(db, data, static_cast<unsigned>(size), 0, scratch, on_event, ctx) != HS_SUCCESS)
    throw std::runtime_error("hs_scan failed");
}

// Whether any pattern of `db` (of the policy's own, by `shared_ids`) matches in `data`:
// the first hit ends the scan.
bool any_match(const hs_database_t* db, std::string_view data, hs_scratch_t* scratch, const uint32_t* shared_ids) {
  const auto on_any_match = [](unsigned id, unsigned long long, unsigned long long, unsigned, void* ids) {
    return CompiledPolicy::own_pattern(static_cast<const uint32_t*>(ids), id) ? 1 : 0;
  };
  const hs_error_t status = hs_scan(db, data.data(), static_cast<unsigned>(data.size()), 0, scratch, on_any_match,
                                    const_cast<uint32_t*>(shared_ids));
  if (status != HS_SUCCESS && status != HS_SCAN_TERMINATED) throw std::runtime_error("hs_scan failed");
  return status == HS_SCAN_TERMINATED;
}

// The main databases over a scan buffer whose raw text is its first `raw_size` bytes
// (none in a skeleton's rescan): every hit, with its start.
void scan_main(const CompiledPolicy& policy, std::string_view data, size_t raw_size, hs_scratch_t* scratch,
               ScanContext::Hits& hits) {
  FirstScan first{&hits, &policy, data, false};
  hits.templates.clear();
  scan_or_throw(policy.database(), data.data(), data.size(), scratch, on_first_match, &first);
  if (hits.templates.empty() && (!first.regex_matched || raw_size == 0)) return;
  // Templates and regexes have a budget of their own, as the digit database has:
  // literals padding a comment past the cap cannot keep a template or regex (a
  // threat, a link) out of the verdict.
  const size_t literals_budget_start = hits.budget_start;
  hits.budget_start = hits.list.size();
  hits.list.insert(hits.list.end(), hits.templates.begin(), hits.templates.end());
  // Over the raw text only: a raw regex's hit that ends past it is not kept.
  if (first.regex_matched && raw_size > 0)
    scan_or_throw(policy.database(DatabasePart::main_starts), data.data(), raw_size, scratch, on_match, &hits);
  hits.budget_start = literals_budget_start;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

bool in_address(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
         c == '_' || c == '+' || c == '%';
}

// Bytes in the letter or digit (of any script) that ends at `end`: a name such as
// "jané" is part of an address; 0 for anything else (a Unicode space among them).
uint32_t letter_before(std::string_view text, uint32_t end) {
  uint32_t begin = end;
  while (begin > 0 && end - begin < 4 && (static_cast<unsigned char>(text[begin - 1]) & 0xC0) == 0x80) --begin;
  if (begin == 0 || static_cast<unsigned char>(text[begin - 1]) < 0xC0) return 0;
  --begin;
  utf8proc_int32_t code_point;
  const auto length = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(text.data() + begin),
                                       static_cast<utf8proc_ssize_t>(end - begin), &code_point);
  if (length != static_cast<utf8proc_ssize_t>(end - begin)) return 0;
  const auto category = utf8proc_get_property(code_point)->category;
  return category >= UTF8PROC_CATEGORY_LU && category <= UTF8PROC_CATEGORY_NO ? end - begin : 0;
}

// Address and link patterns (`validate: domain`) may match from the character before
// '@' or before a domain's last dot: the span starts where the address does, so the
// allow-list sees the whole domain and redaction hides all of the address, its
// scheme ("https://") included.
uint32_t address_start(std::string_view text, uint32_t from) {
  // A pattern may start on a letter's last byte ("é@"): from its first.
  while (from > 0 && from < text.size() && (static_cast<unsigned char>(text[from]) & 0xC0) == 0x80) --from;
  while (from > 0) {
    if (in_address(text[from - 1])) --from;
    else if (const uint32_t letter = static_cast<unsigned char>(text[from - 1]) >= 0x80 ? letter_before(text, from) : 0)
      from -= letter;
    else break;
  }
  // Only the web's schemes: "experiencehttp://..." (a missing space) is no scheme.
  const auto scheme_ends_at = [&](std::string_view scheme) {
    if (from < scheme.size()) return false;
    for (size_t i = 0; i < scheme.size(); ++i)
      if ((text[from - scheme.size() + i] | 0x20) != scheme[i]) return false;
    return true;
  };
  for (std::string_view scheme : {"https://", "http://"})
    if (scheme_ends_at(scheme)) return from - static_cast<uint32_t>(scheme.size());
  return from;
}

// Whether a host found at `from` comes right after '@' (or '＠', spaces between allowed).
bool after_at_sign(std::string_view text, uint32_t from) {
  while (from > 0 && text[from - 1] == ' ') --from;
  if (from > 0 && text[from - 1] == '@') return true;
  return from >= 3 && text.substr(from - 3, 3) == "\xef\xbc\xa0";
}

// The domain of an e-mail address is the address's to report: a link rule's match of a
// host right after '@' goes when a pii rule's match covers it. An address the pii
// rules do not know (another top-level domain) keeps its link match.
void drop_email_domains(const PolicySpec& spec, std::string_view text, std::vector<Match>& c) {
  const auto is_link = [&](const Match& m) {
    return spec.rules[m.rule].validator == Validator::domain && spec.rules[m.rule].category != Category::pii &&
           after_at_sign(text, m.start);
  };
  if (std::none_of(c.begin(), c.end(), is_link)) return;
  const auto covered_by_address = [&](const Match& m) {
    return std::any_of(c.begin(), c.end(), [&](const Match& a) {
      return spec.rules[a.rule].category == Category::pii && a.start <= m.start && a.end >= m.end;
    });
  };
  c.erase(std::remove_if(c.begin(), c.end(), [&](const Match& m) { return is_link(m) && covered_by_address(m); }),
          c.end());
}

// An e-mail address written out ("jane.doe at gmail dot com", "jane[at]gmail.com") is
// found from its "at": the span starts at the name before it, so redaction hides the
// whole address.
uint32_t spelled_address_start(std::string_view text, uint32_t from) {
  const std::string_view rest = text.substr(from);
  const auto is_at = [&](size_t i) { return (rest[i] | 0x20) == 'a' && (rest[i + 1] | 0x20) == 't'; };
  const bool word = rest.size() > 2 && is_at(0) && is_space(rest[2]);
  const bool bracketed = rest.size() > 3 && std::string_view("[({").find(rest[0]) != std::string_view::npos &&
                         is_at(1) && std::string_view("])}").find(rest[3]) != std::string_view::npos;
  if (!word && !bracketed) return from;
  uint32_t name_end = from;
  while (name_end > 0 && is_space(text[name_end - 1])) --name_end;
  uint32_t name_start = address_start(text, name_end);
  if (name_start == name_end) return from;
  // A name's own dots may be written out too: "jane dot doe at ...", "jane[dot]doe".
  while (true) {
    uint32_t before = name_start;
    while (before > 0 && is_space(text[before - 1])) --before;
    if (before < 3) break;
    const auto lower = [&](uint32_t i) { return static_cast<char>(text[i] | 0x20); };
    uint32_t dot = before;
    const bool bracket = std::string_view("])}").find(text[before - 1]) != std::string_view::npos;
    if (bracket) --dot;
    if (dot < 3 || lower(dot - 3) != 'd' || lower(dot - 2) != 'o' || lower(dot - 1) != 't') break;
    dot -= 3;
    if (bracket) {
      if (dot == 0 || std::string_view("[({").find(text[dot - 1]) == std::string_view::npos) break;
      --dot;
    } else if (before == name_start || dot == 0 || !is_space(text[dot - 1])) {
      break;  // " dot " needs a space on each side
    }
    while (dot > 0 && is_space(text[dot - 1])) --dot;
    const uint32_t earlier = address_start(text, dot);
    if (earlier == dot) break;
    name_start = earlier;
  }
  return name_start;
}

// The text duplicate rules compare: ASCII letters lower-cased, each run of whitespace
// (Unicode's too) one space, invisible characters (default-ignorable) dropped, no space at either end and
// no closing marks (.!?) at the end. The skeleton would be too coarse: it folds digits
// and letter runs ("at 100" and "at 1000" are one skeleton) and reads a comment of
// emoji as empty.
// Printable ASCII with single spaces, most of any comment, is copied sixteen bytes at
// a time (the byte loop was a third of classify's own time over a pickering stream).
// Every input byte yields at most one output byte, so `out` never outgrows the input
// and a block may be stored whole at the write position.
void duplicate_text(std::string_view text, std::string& out) {
  out.resize(text.size());
  char* const o = out.data();
  size_t n = 0;  // bytes written; n <= i throughout
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  size_t i = 0;
  while (i < text.size()) {
    if (text.size() - i >= 16) {
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
      // Signed compares: bytes >= 0x80 are negative, so not printable.
      const auto printable = static_cast<unsigned>(_mm_movemask_epi8(
          _mm_and_si128(_mm_cmpgt_epi8(b, _mm_set1_epi8(0x1F)), _mm_cmplt_epi8(b, _mm_set1_epi8(0x7F)))));
      const auto spaces = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(b, _mm_set1_epi8(' '))));
      // A space after a space, or first in the output, is not kept: the byte loop decides.
      const unsigned space_before = (spaces << 1) | ((n == 0 || o[n - 1] == ' ') ? 1u : 0u);
      const unsigned stop = (~printable | (spaces & space_before)) & 0xFFFFu;
      const __m128i upper =
          _mm_and_si128(_mm_cmpgt_epi8(b, _mm_set1_epi8('A' - 1)), _mm_cmplt_epi8(b, _mm_set1_epi8('Z' + 1)));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(o + n), _mm_or_si128(b, _mm_and_si128(upper, _mm_set1_epi8(0x20))));
      const size_t taken = stop == 0 ? 16 : static_cast<size_t>(__builtin_ctz(stop));
      n += taken;
      i += taken;
      if (taken == 16 || i == text.size()) continue;
    }
    const char c = text[i];
    bool zero_width = false;
    const size_t space = static_cast<unsigned char>(c) >= 0x80 ? text::unicode_space(text.substr(i), zero_width) : 0;
    if (space > 0 || is_space(c) || c == '\f' || c == '\v') {
      if (!zero_width && n > 0 && o[n - 1] != ' ') o[n++] = ' ';
      i += space > 0 ? space : 1;
      continue;
    }
    if (static_cast<unsigned char>(c) >= 0x80) {
      // Other invisible characters (direction marks, variation selectors, the
      // grapheme joiner: Unicode's default-ignorable ones) are dropped as well.
      utf8proc_int32_t code_point;
      const auto length = utf8proc_iterate(p + i, static_cast<utf8proc_ssize_t>(text.size() - i), &code_point);
      if (length > 0) {
        if (!utf8proc_get_property(code_point)->ignorable) {
          std::memcpy(o + n, p + i, static_cast<size_t>(length));
          n += static_cast<size_t>(length);
        }
        i += static_cast<size_t>(length);
        continue;
      }
    }
    o[n++] = c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
    ++i;
  }
  while (n > 0 && (o[n - 1] == ' ' || o[n - 1] == '.' || o[n - 1] == '!' || o[n - 1] == '?')) --n;
  out.resize(n);
}

// Where the comment's content ends, for regexes anchored with '$': before its
// trailing spaces, Unicode's too.
uint32_t end_of_content(std::string_view text) {
  size_t end = text.size();
  while (end > 0) {
    const char c = text[end - 1];
    if (is_space(c) || c == '\f' || c == '\v') {
      --end;
      continue;
    }
    bool zero_width = false;
    if (end >= 2 && text::unicode_space(text.substr(end - 2, 2), zero_width) == 2) end -= 2;
    else if (end >= 3 && text::unicode_space(text.substr(end - 3, 3), zero_width) == 3) end -= 3;
    else break;
  }
  return static_cast<uint32_t>(end);
}

// Sixteen bytes at a time (GCC leaves the byte loop scalar): a byte is a digit when
// c - '0' is at most 9, unsigned.
bool has_ascii_digit(std::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  const __m128i zero = _mm_set1_epi8('0'), nine = _mm_set1_epi8(9);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m128i d = _mm_sub_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i)), zero);
    if (_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(d, nine), d)) != 0) return true;
  }
  for (; i < n; ++i)
    if (static_cast<unsigned char>(p[i] - '0') < 10) return true;
  return false;
}

// Masked spellings of terms ("f*ck"): each skeleton word that holds a mask is looked up
// in the policy's MaskedTerms. `sk` is marked for scanning (text::mark_for_scan). Reads
// each byte at most twice, however many masks a word holds.
// Masked spellings count against the main database's hit cap as its hits do: a
// comment of thousands of masked words stays bounded too.
void add_masked_matches(const MaskedTerms& terms, const text::Skeleton& sk, ScanContext::Hits& hits,
                        std::vector<Match>& out) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(sk.bytes.data() + sk.offset);
  constexpr auto mask = static_cast<unsigned char>(text::kMask ^ text::kScanBit);
  constexpr auto space = static_cast<unsigned char>(' ' ^ text::kScanBit);
  size_t from = 0;  // the words before it are read; it is a space
  while (const void* found = std::memchr(bytes + from, mask, sk.size - from)) {
    const auto at = static_cast<size_t>(static_cast<const unsigned char*>(found) - bytes);
    size_t begin = at, end = at + 1;
    while (begin > from && bytes[begin - 1] != space) --begin;
    while (end < sk.size && bytes[end] != space) ++end;  // the skeleton ends with a space
    from = end;
    if (!MaskedTerms::possible_length(end - begin)) continue;
    char word[MaskedTerms::kMaxLetters];
    for (size_t k = begin; k < end; ++k) word[k - begin] = static_cast<char>(bytes[k] ^ text::kScanBit);
    // The word's first letter to where it ends (the space after it), as for a literal.
    terms.match({word, end - begin}, sk.run_length.data() + begin,
                [&](uint16_t rule) {
                  if (hits.list.size() - hits.budget_start + hits.masked >= kMaxHits) {  // the main budget
                    hits.overflowed = true;
                    return;
                  }
                  ++hits.masked;
                  out.push_back({rule, sk.source_begin[begin], sk.source_begin[end]});
                });
  }
}


// A masked word of a phrase or template ("I'll k*ll you", "k*ll yourself") is read as
// the one word of the policy's terms it spells: `out` gets the skeleton with such words
// written out (their bytes mapped to the masked word's source), marked for scanning.
// False when no word was written out: then there is nothing to scan again. A word that
// spells several ("sh*t": shit, shot, shut) is left as it is.
bool write_out_masked_words(const MaskedTerms& vocabulary, const text::Skeleton& sk, text::Skeleton& out) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(sk.bytes.data() + sk.offset);
  constexpr auto mask = static_cast<unsigned char>(text::kMask ^ text::kScanBit);
  constexpr auto space = static_cast<unsigned char>(' ' ^ text::kScanBit);
  if (!std::memchr(bytes, mask, sk.size)) return false;
  out.offset = 0;
  out.size = 0;
  out.bytes.clear();
  out.source_begin.clear();
  out.run_length.clear();
  bool written = false;
  size_t begin = 0;
  while (begin < sk.size) {
    size_t end = begin;
    while (end < sk.size && bytes[end] != space) ++end;
    const bool masked = std::memchr(bytes + begin, mask, end - begin) != nullptr;
    std::string_view spelled;
    const uint16_t* spelled_runs = nullptr;
    if (masked && MaskedTerms::possible_length(end - begin)) {
      char word[MaskedTerms::kMaxLetters];
      for (size_t k = begin; k < end; ++k) word[k - begin] = static_cast<char>(bytes[k] ^ text::kScanBit);
      bool several = false;
      vocabulary.match_spellings({word, end - begin}, sk.run_length.data() + begin,
                                 [&](std::string_view letters, const uint16_t* runs) {
                                   if (spelled.empty()) {
                                     spelled = letters;
                                     spelled_runs = runs;
                                   } else {
                                     several |= letters != spelled;
                                   }
                                 });
      if (several) spelled = {};
    }
    if (!spelled.empty()) {
      for (size_t k = 0; k < spelled.size(); ++k) {
        out.bytes.push_back(static_cast<char>(static_cast<unsigned char>(spelled[k]) ^ text::kScanBit));
        out.source_begin.push_back(sk.source_begin[begin]);
        out.run_length.push_back(spelled_runs[k]);
      }
      written = true;
    } else {
      out.bytes.append(reinterpret_cast<const char*>(bytes + begin), end - begin);
      out.source_begin.insert(out.source_begin.end(), sk.source_begin.begin() + static_cast<long>(begin),
                              sk.source_begin.begin() + static_cast<long>(end));
      out.run_length.insert(out.run_length.end(), sk.run_length.begin() + static_cast<long>(begin),
                            sk.run_length.begin() + static_cast<long>(end));
    }
    if (end < sk.size) {  // the space after the word
      out.bytes.push_back(static_cast<char>(space));
      out.source_begin.push_back(sk.source_begin[end]);
      out.run_length.push_back(sk.run_length[end]);
    }
    begin = end + 1;
  }
  out.size = out.bytes.size();
  return written;
}

}  // namespace

bool rule_applies(const RuleSpec& rule, const PolicySpec& spec, Direction direction, int64_t ts_ms) {
  if (rule.direction != DirectionScope::any && (rule.direction == DirectionScope::inbound) != (direction == Direction::inbound))
    return false;
  return !rule.during_election || (spec.election && spec.election->contains(time_or_now(ts_ms)));
}

ScanContext::ScanContext() = default;
ScanContext::~ScanContext() { hs_free_scratch(scratch_); }

// Keyed by the policy's serial, not its databases' addresses: a reloaded policy's
// database may sit where a freed one was and need a larger scratch.
void ScanContext::ensure_scratch(const CompiledPolicy& policy) {
  if (std::find(prepared_.begin(), prepared_.end(), policy.serial()) != prepared_.end()) return;
  for (size_t part = 0; part < kDatabaseParts; ++part)
    if (const hs_database_t* db = policy.database(static_cast<DatabasePart>(part));
        db && hs_alloc_scratch(db, &scratch_) != HS_SUCCESS)
      throw std::bad_alloc();
  if (prepared_.size() >= 64) prepared_.clear();  // old snapshots; the scratch stays big enough
  prepared_.push_back(policy.serial());
}

void classify(const CompiledPolicy& policy, const Comment& comment, ScanContext& ctx, Verdict& out) {
  out.policy = &policy;
  out.matches.clear();
  out.routes.clear();
  out.duplicate_hash = 0;
  out.hits_capped = false;

  const std::string_view text = comment.text;
  ctx.ensure_scratch(policy);
  // One buffer: the raw text, a newline, the skeleton (built in place after them,
  // its bytes' text::kScanBit flipped).
  auto& sk = ctx.skeleton_;
  sk.offset = text.size() + 1;
  if (sk.bytes.size() < sk.offset) sk.bytes.resize(sk.offset);
  std::memcpy(sk.bytes.data(), text.data(), text.size());
  sk.bytes[text.size()] = '\n';
  text::build_skeleton(text, sk);
  text::mark_for_scan(sk);
  const auto raw_end = static_cast<uint32_t>(text.size());
  const auto skeleton_begin = static_cast<uint32_t>(sk.offset);

  ctx.hits_.clear();
  ctx.hits_.shared_ids = ctx.rescan_hits_.shared_ids = policy.shared_ids();
  // The regexes that need a digit (policy/compiler.h) only where one can match: over
  // the raw text, when it holds one. Each database has its own budget of hits, so
  // padding that exhausts the main one cannot keep a phone number out of the verdict.
  // The first scan only asks whether any matches, which most numbers (times, dates,
  // counts) do not; their part with starts has them all.
  if (policy.digit_database() && has_ascii_digit(text) &&
      any_match(policy.digit_database(), text, ctx.scratch_, policy.shared_ids())) {
    DigitScan digit_scan{&ctx.hits_, &policy, text};
    scan_or_throw(policy.database(DatabasePart::digit_starts), text.data(), text.size(), ctx.scratch_, on_digit_match,
                  &digit_scan);
  }
  ctx.hits_.budget_start = ctx.hits_.list.size();
  if (policy.database()) scan_main(policy, {sk.bytes.data(), sk.offset + sk.size}, raw_end, ctx.scratch_, ctx.hits_);

  const uint32_t content_end = end_of_content(text);

  const PolicySpec& spec = policy.spec();
  ctx.candidates_.clear();
  ctx.allows_.clear();
  // One scan's hits: the raw text's below `raw_until`, the skeleton's from `skeleton_at`
  // of the buffer, `scanned` mapping its bytes back to the source.
  const auto read_hits = [&](const ScanContext::Hits& hits, const text::Skeleton& scanned, uint32_t raw_until,
                             uint32_t skeleton_at) {
    for (const auto& hit : hits.list) {
      const PatternMeta& meta = policy.pattern(hit.pattern);
      if (meta.view == View::raw) {
        if (hit.to > raw_until) continue;  // a raw pattern inside the skeleton part
        if (meta.anchor_end && hit.to < content_end) continue;
        const uint16_t rule = policy.rules(meta).front();
        const uint32_t from =
            spec.rules[rule].validator == Validator::domain ? address_start(text, hit.from) : hit.from;
        if (!validator_accepts(spec.rules[rule], spec, text, from, hit.to)) continue;
        uint32_t to = hit.to;
        // A phone regex may end on an extension's "x" or "ext" (a word boundary cannot
        // follow the digits there): the span is the number.
        if (spec.rules[rule].validator == Validator::phone)
          while (to > from && (text[to - 1] < '0' || text[to - 1] > '9')) --to;
        ctx.candidates_.push_back({rule, from, to});
        continue;
      }
      const uint32_t length = meta.length ? meta.length : hit.to - hit.from;
      if (hit.to < skeleton_at + length || (meta.length == 0 && hit.from < skeleton_at)) continue;
      const uint32_t s = hit.to - length - skeleton_at;
      // The literal is " body ": map the body back to source bytes (the closing space
      // records where the body's last word ends).
      const uint32_t start = scanned.source_begin[s + 1];
      const uint32_t end = scanned.source_begin[s + length - 1];
      if (meta.kind == PatternKind::allow) {
        ctx.allows_.push_back({hit.pattern, start, end});
        continue;
      }
      if (meta.length) {
        const auto profile = policy.run_profile(meta);
        if (!text::runs_fit(profile.data(), scanned.run_length.data() + s, profile.size())) continue;
      }
      for (uint16_t rule : policy.rules(meta))
        if (validator_accepts(spec.rules[rule], spec, text, start, end))
          ctx.candidates_.push_back({rule, start, end});
    }
  };
  read_hits(ctx.hits_, sk, raw_end, skeleton_begin);

  if (!policy.masked_terms().empty()) {
    const size_t unmasked = ctx.candidates_.size();
    add_masked_matches(policy.masked_terms(), sk, ctx.hits_, ctx.candidates_);
    auto& c = ctx.candidates_;
    c.erase(std::remove_if(c.begin() + static_cast<long>(unmasked), c.end(),
                           [&](const Match& m) {
                             return !validator_accepts(spec.rules[m.rule], spec, text, m.start, m.end);
                           }),
            c.end());
  }
  // Masked words inside phrases ("I'll k*ll you"): the skeleton with them written out,
  // scanned again. Only comments with a masked word the policy's terms spell pay for it.
  bool rescan_overflowed = false;
  const bool rescanned = policy.database() && !policy.vocabulary().empty() &&
                         write_out_masked_words(policy.vocabulary(), sk, ctx.written_out_);
  if (rescanned) {
    ctx.rescan_hits_.clear();
    scan_main(policy, {ctx.written_out_.bytes.data(), ctx.written_out_.size}, 0, ctx.scratch_, ctx.rescan_hits_);
    read_hits(ctx.rescan_hits_, ctx.written_out_, 0, 0);
    rescan_overflowed = ctx.rescan_hits_.overflowed;
  }
  // Allow phrases are scanned for only when a rule they protect matched: in the main
  // database they cost every comment (measured: 3% of classify's instructions).
  if (policy.allow_database() &&
      std::any_of(ctx.candidates_.begin(), ctx.candidates_.end(),
                  [&](const Match& m) { return policy.has_allow_patterns(m.rule); })) {
    for (const text::Skeleton* scanned : {&sk, rescanned ? &ctx.written_out_ : nullptr}) {
      if (!scanned) continue;
      ctx.rescan_hits_.clear();
      scan_or_throw(policy.allow_database(), scanned->bytes.data() + scanned->offset, scanned->size, ctx.scratch_,
                    on_match, &ctx.rescan_hits_);
      read_hits(ctx.rescan_hits_, *scanned, 0, 0);
    }
  }
  out.hits_capped = ctx.hits_.overflowed || rescan_overflowed;
  for (auto& m : ctx.candidates_)
    if (spec.rules[m.rule].category == Category::pii) m.start = spelled_address_start(text, m.start);
  drop_email_domains(spec, text, ctx.candidates_);

  auto allowed = [&](const Match& m) {
    for (const auto& a : ctx.allows_) {
      if (a.start > m.start || a.end < m.end) continue;
      const auto rules = policy.rules(policy.pattern(a.pattern));
      if (std::find(rules.begin(), rules.end(), m.rule) != rules.end()) return true;
    }
    return false;
  };

  // One match per rule and span: overlapping matches of a rule are one, spanning them
  // all (an address found from its unit number and from its street type is hidden whole).
  auto& c = ctx.candidates_;
  std::sort(c.begin(), c.end(), [](const Match& a, const Match& b) {
    return a.rule != b.rule ? a.rule < b.rule : a.start != b.start ? a.start < b.start : a.end > b.end;
  });
  for (size_t i = 0; i < c.size(); ++i) {
    const Match& m = c[i];
    if (!out.matches.empty() && out.matches.back().rule == m.rule && m.start < out.matches.back().end) {
      if (m.end > out.matches.back().end && !allowed(m)) out.matches.back().end = m.end;
      continue;
    }
    if (!rule_applies(spec.rules[m.rule], spec, comment.direction, comment.ts_ms) || allowed(m)) continue;
    out.matches.push_back(m);
  }
  order_matches(out.matches);

  if (!policy.duplicate_rules().empty()) {
    duplicate_text(text, ctx.duplicate_text_);
    if (!ctx.duplicate_text_.empty()) out.duplicate_hash = XXH3_64bits(ctx.duplicate_text_.data(), ctx.duplicate_text_.size());
  }
  aggregate(policy, out);
}

void aggregate(const CompiledPolicy& policy, Verdict& out) {
  const PolicySpec& spec = policy.spec();
  out.action = Action::allow;
  out.categories = 0;
  out.score = 0;
  for (size_t i = 0; i < out.matches.size(); ++i) {
    const uint16_t rule = out.matches[i].rule;
    const RuleSpec& r = spec.rules[rule];
    out.action = std::max(out.action, r.action);
    out.categories |= 1u << static_cast<unsigned>(r.category);
    for (const auto& route : r.routes)
      if (std::find(out.routes.begin(), out.routes.end(), route) == out.routes.end()) out.routes.push_back(route);
    // Each rule scores once, however often it matched.
    bool scored = false;
    for (size_t j = 0; j < i && !scored; ++j) scored = out.matches[j].rule == rule;
    if (!scored) out.score += r.score;
  }
  const Thresholds& t = spec.thresholds;
  if (t.escalate > 0 && out.score >= t.escalate) out.action = std::max(out.action, Action::escalate);
  else if (t.remove > 0 && out.score >= t.remove) out.action = std::max(out.action, Action::remove);
  else if (t.review > 0 && out.score >= t.review) out.action = std::max(out.action, Action::review);
  if (out.hits_capped) out.action = std::max(out.action, Action::review);
}

}  // namespace civicsift
