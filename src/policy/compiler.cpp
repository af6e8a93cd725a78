#include "policy/compiler.h"

#include <fcntl.h>
#include <link.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <random>
#include <set>
#include <unordered_map>

#include "common/parallel.h"
#include "policy/loader.h"
#include "policy/phrase_template.h"
#include "policy/regex_digits.h"
#include "policy/snapshot.h"
#include "text/skeleton.h"
#include "text/spaces.h"

namespace civicsift {
namespace fs = std::filesystem;

namespace {

uint64_t next_serial() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace

CompiledPolicy::CompiledPolicy(PolicySpec spec, PolicyDatabases dbs, PatternIndex index, PolicySource source,
                               double compile_seconds, uint64_t cache_key)
    : spec_(std::move(spec)),
      label_(spec_.tenant + "@" + spec_.version),
      dbs_(std::move(dbs)),
      index_(std::move(index)),
      source_(source),
      compile_seconds_(compile_seconds),
      cache_key_(cache_key),
      serial_(next_serial()) {
  for (size_t part = 0; part < kDatabaseParts; ++part) has_part_[part] = dbs_.parts[part] != nullptr;
  for (size_t i = 0; i < spec_.rules.size(); ++i)
    if (spec_.rules[i].duplicate_within_ms > 0) duplicate_rules_.push_back(static_cast<uint16_t>(i));
  if (dbs_.get(DatabasePart::allows)) {
    rules_with_allow_patterns_.assign(spec_.rules.size(), false);
    for (const PatternMeta& p : index_.patterns)
      if (is_allow_pattern(p))
        for (uint16_t rule : rules(p)) rules_with_allow_patterns_[rule] = true;
  }
}

CompiledPolicy::CompiledPolicy(const CompiledPolicy& other, WithoutDatabases)
    : spec_(other.spec_),
      label_(other.label_),
      index_(other.index_),
      rules_with_allow_patterns_(other.rules_with_allow_patterns_),
      duplicate_rules_(other.duplicate_rules_),
      source_(other.source_),
      compile_seconds_(other.compile_seconds_),
      cache_key_(other.cache_key_),
      serial_(next_serial()),
      has_part_(other.has_part_) {}

void HsDatabaseDeleter::operator()(hs_database_t* db) const {
  if (mapped_bytes) ::munmap(db, mapped_bytes);
  else hs_free_database(db);
}

namespace {

size_t size_of(const hs_database_t* db) {
  size_t size = 0;
  return db && hs_database_size(db, &size) == HS_SUCCESS ? size : 0;
}

}  // namespace

size_t PolicyDatabases::bytes() const {
  size_t total = 0;
  for (const auto& db : parts) total += size_of(db.get());
  return total;
}

size_t CompiledPolicy::database_bytes() const {
  size_t total = 0;
  for (size_t part = 0; part < kDatabaseParts; ++part) total += size_of(database(static_cast<DatabasePart>(part)));
  return total;
}

PolicySet::PolicySet(std::vector<std::shared_ptr<const CompiledPolicy>> policies) : policies_(std::move(policies)) {
  for (const auto& p : policies_) by_tenant_.emplace(p->tenant(), p.get());
}

const CompiledPolicy* PolicySet::find(std::string_view tenant) const {
  auto it = by_tenant_.find(tenant);
  return it == by_tenant_.end() ? nullptr : it->second;
}

namespace {

// One skeleton byte as the scan buffer holds it (text::kScanBit flipped), as a regex
// atom. Called for every byte of ~10,000 literals per tenant: no formatting library.
void append_scan_byte(std::string& out, unsigned char c) {
  constexpr char kHex[] = "0123456789abcdef";
  const unsigned v = c ^ text::kScanBit;
  const char atom[] = {'\\', 'x', kHex[v >> 4], kHex[v & 15]};
  out.append(atom, sizeof atom);
}
std::string scan_byte(unsigned char c) {
  std::string out;
  append_scan_byte(out, c);
  return out;
}

// The pattern table under construction, with the source of each pattern for errors.
// Start-up builds it for every tenant even when the databases come from the cache (it
// yields their key), so it avoids allocations it does not need.
struct PatternTable {
  std::vector<std::string> expressions;
  std::vector<unsigned> flags;
  std::vector<PatternMeta> meta;
  std::vector<uint16_t> run_profiles;
  std::vector<TemplateStarts> templates;
  // Each pattern's first rule; the few literals that more rules share keep the others
  // aside until finish() lays every pattern's rules out in one list.
  std::vector<uint16_t> first_rule;
  std::unordered_map<unsigned, std::vector<uint16_t>> more_rules;
  // Rule index and source text (a view of the spec's term, phrase or regex, which
  // outlives the table) of each pattern.
  std::vector<std::pair<int, std::string_view>> origin;
  // A literal's kind, bytes and run profile, as one string -> its pattern id.
  std::unordered_map<std::string, unsigned> literal_ids;
  // Where masked spellings go: looked up after the scan (MaskedTerms), or, for the
  // benchmark peers, which have no such step, literals like any other.
  MaskedSpellings masked_spellings = MaskedSpellings::looked_up;
  MaskedTerms masked;
  // The words of every term, with their run lengths (PatternIndex::vocabulary).
  std::set<std::pair<std::string, std::vector<uint16_t>>> vocabulary;

  void add(std::string expression, unsigned flag, PatternMeta m, uint16_t rule, std::string_view source) {
    expressions.push_back(std::move(expression));
    flags.push_back(flag);
    meta.push_back(m);
    first_rule.push_back(rule);
    origin.emplace_back(rule, source);
  }

  void add_literal(PatternKind kind, const std::string& literal, const std::vector<uint16_t>& profile, uint16_t rule,
                   std::string_view source) {
    std::string key;
    key.reserve(1 + literal.size() + 2 * profile.size());
    key += kind == PatternKind::allow ? 'a' : 't';  // allow and term never share an id
    key += literal;  // skeleton bytes: never NUL, and the profile has one entry per byte
    if (kind != PatternKind::allow)
      key.append(reinterpret_cast<const char*>(profile.data()), profile.size() * sizeof(uint16_t));
    auto [it, inserted] = literal_ids.emplace(std::move(key), static_cast<unsigned>(meta.size()));
    if (!inserted) {
      auto& more = more_rules[it->second];
      if ((more.empty() ? first_rule[it->second] : more.back()) != rule) more.push_back(rule);
      return;
    }
    std::string expr;
    expr.reserve(4 * literal.size());
    for (unsigned char c : literal) append_scan_byte(expr, c);
    PatternMeta m;
    m.view = View::skeleton;
    m.kind = kind;
    m.length = static_cast<uint32_t>(literal.size());
    if (kind == PatternKind::term) {
      m.profile_begin = static_cast<uint32_t>(run_profiles.size());
      run_profiles.insert(run_profiles.end(), profile.begin(), profile.end());
    }
    add(std::move(expr), 0, m, rule, source);
  }

  PatternIndex finish() {
    PatternIndex index;
    index.masked = std::move(masked);
    for (const auto& [word, runs] : vocabulary) index.vocabulary.add(word, runs, 0);
    index.rules.reserve(meta.size() + more_rules.size());
    for (size_t i = 0; i < meta.size(); ++i) {
      meta[i].rules_begin = static_cast<uint32_t>(index.rules.size());
      index.rules.push_back(first_rule[i]);
      if (auto more = more_rules.find(static_cast<unsigned>(i)); more != more_rules.end())
        index.rules.insert(index.rules.end(), more->second.begin(), more->second.end());
      meta[i].rule_count = static_cast<uint16_t>(index.rules.size() - meta[i].rules_begin);
    }
    index.patterns = std::move(meta);
    index.run_profiles = std::move(run_profiles);
    index.templates = std::move(templates);
    return index;
  }
};

bool is_ascii_word(std::string_view s) {
  for (unsigned char c : s)
    if (!(c >= 'a' && c <= 'z')) return false;
  return true;
}

// Where a term or pattern comes from, for its errors: the policy file at its rule's
// line, or a lexicon file.
struct Origin {
  const fs::path& file;
  const std::string& rule;
  int line;
  PolicyError error(std::string message) const { return PolicyError{file, rule, std::move(message), line}; }
};

// " term " and its grawlix-masked spellings: one interior block of letters replaced by
// the mask ("f*ck", "fu*k", "f*k"), first and last letters kept, at least two letters kept.
// Those spellings go to the table's MaskedTerms, or are enumerated as literals for the
// peers, which cannot count mask characters and so also read "f*k" and "d*e".
void add_spelling(PatternTable& t, const std::string& term, uint16_t rule, const Origin& at) {
  std::vector<uint16_t> runs;
  const std::string skel = text::term_skeleton(term, &runs);
  if (skel.empty()) throw at.error(fmt::format("term \"{}\" has no letters or digits", term));
  // The literal is framed by spaces, whose run profile entries are 0 (any). Both are
  // built in buffers reused for every spelling.
  std::string literal;
  std::vector<uint16_t> profile;
  // The mask covers the letters [mask_from, mask_to) (none when equal and nothing is
  // partial) and, when `partial_before`/`partial_after`, all but one of the doubled
  // letter beside it, which is kept once.
  auto add = [&](size_t mask_from, size_t mask_to, bool partial_before, bool partial_after) {
    literal.assign(1, ' ');
    literal.append(skel, 0, mask_from);
    profile.assign(1, 0);
    profile.insert(profile.end(), runs.begin(), runs.begin() + static_cast<long>(mask_from));
    if (partial_before) profile.back() = 1;
    const bool masked = mask_to > mask_from || partial_before || partial_after;
    if (masked) {
      literal += text::kMask;
      profile.push_back(0);
    }
    literal.append(skel, mask_to, std::string::npos);
    literal += ' ';
    profile.insert(profile.end(), runs.begin() + static_cast<long>(mask_to), runs.end());
    if (partial_after) profile[profile.size() - (skel.size() - mask_to)] = 1;
    profile.push_back(0);
    t.add_literal(PatternKind::term, literal, profile, rule, term);
  };
  add(0, 0, false, false);
  const size_t n = skel.size();
  if (n < MaskedTerms::kMinLetters || n > MaskedTerms::kMaxLetters || !is_ascii_word(skel)) return;
  if (t.masked_spellings == MaskedSpellings::looked_up) {
    t.masked.add(skel, runs, rule);
    return;
  }
  // The spellings MaskedTerms::match accepts: at least one letter kept each side, at
  // least one hidden.
  for (size_t from = 1; from < n; ++from) {
    for (size_t to = from; to < n; ++to) {
      for (const bool before : {false, true}) {
        for (const bool after : {false, true}) {
          if ((before && runs[from - 1] < 2) || (after && runs[to] < 2)) continue;
          if (to == from && !before && !after) continue;
          add(from, to, before, after);
        }
      }
    }
  }
}

// A template as one regex on the skeleton: each text run is turned into its skeleton
// (keeping word breaks at its edges), the template's (|)? syntax is kept as is, inside
// a group between the framing spaces: "darn|heck" is " (darn|heck) ", not " darn" or
// "heck " (which "check " holds).
std::string template_regex(std::string_view term) {
  const std::string space = scan_byte(' ');
  std::string out = space + "(";
  size_t i = 0;
  auto is_syntax = [](char c) { return c == '(' || c == ')' || c == '|' || c == '?'; };
  auto is_break = [](char c) { return !std::isalnum(static_cast<unsigned char>(c)) && c != '$' && c != '@' && c != '*'; };
  while (i < term.size()) {
    if (is_syntax(term[i])) {
      out.push_back(term[i++]);
      continue;
    }
    size_t j = i;
    while (j < term.size() && !is_syntax(term[j])) ++j;
    const std::string_view run = term.substr(i, j - i);
    // "x?" makes only the last letter optional: keep that letter out of the run.
    std::string_view body = run;
    char optional_letter = 0;
    if (j < term.size() && term[j] == '?' && !run.empty() && !is_break(run.back())) {
      optional_letter = run.back();
      body.remove_suffix(1);
    }
    const bool lead = !body.empty() && is_break(body.front());
    const bool trail = !body.empty() && is_break(body.back());
    // A break at the edge of a run ("'ll", "you're ") becomes an optional space: the
    // template's own spaces already separate words, and two would never match.
    const std::string sk = text::term_skeleton(body);
    // The letter made optional goes in even when it was the whole run ("(a|b)s?"):
    // else the '?' would apply to whatever came before it.
    const std::string letter =
        optional_letter ? scan_byte(static_cast<unsigned char>(std::tolower(static_cast<unsigned char>(optional_letter)))) : "";
    if (sk.empty()) {  // only breaks (or nothing but the optional letter): one word break
      if (lead) out += space;
      out += letter;
      i = j;
      continue;
    }
    if (lead) out += space + "?";
    for (unsigned char c : sk) append_scan_byte(out, c);
    if (trail) out += space + "?";
    out += letter;
    i = j;
  }
  out += ")" + space;
  return out;
}

// The words of a term's spelling that a masked word could stand for: ASCII letters
// only, as MaskedTerms holds them.
void add_vocabulary(PatternTable& t, std::string_view spelling) {
  if (spelling.empty()) return;
  std::vector<uint16_t> runs;
  const std::string skel = text::term_skeleton(spelling, &runs);
  for (size_t begin = 0; begin < skel.size();) {
    size_t end = skel.find(' ', begin);
    if (end == std::string::npos) end = skel.size();
    const std::string_view word(skel.data() + begin, end - begin);
    if (word.size() >= MaskedTerms::kMinLetters && word.size() <= MaskedTerms::kMaxLetters && is_ascii_word(word))
      t.vocabulary.emplace(word, std::vector<uint16_t>(runs.begin() + static_cast<long>(begin), runs.begin() + static_cast<long>(end)));
    begin = end + 1;
  }
}

// The words of a template's spellings, without spelling them out (a harassment
// template spells millions of phrases but holds a few hundred words): the words being
// written are carried through each group's alternatives and finished at each space.
// Reads from `at` to the end of the template or of the group it is in.
std::set<std::string> template_words(PatternTable& t, std::string_view term, size_t& at, std::set<std::string> words) {
  constexpr size_t kMaxWordsInProgress = 4096;  // groups that glue onto groups multiply them
  while (at < term.size() && term[at] != '|' && term[at] != ')') {
    const char c = term[at++];
    if (c == '(') {
      std::set<std::string> after;
      for (;;) {
        std::set<std::string> alternative = template_words(t, term, at, words);
        after.merge(alternative);
        if (at < term.size() && term[at] == '|') {
          ++at;
          continue;
        }
        break;
      }
      if (at < term.size() && term[at] == ')') ++at;
      if (at < term.size() && term[at] == '?') {
        ++at;
        after.insert(words.begin(), words.end());
      }
      words = std::move(after);
    } else if (c == ' ') {
      for (const auto& word : words) add_vocabulary(t, word);
      words = {std::string()};
    } else {
      const bool optional = at < term.size() && term[at] == '?';
      if (optional) ++at;
      std::set<std::string> longer;
      for (const auto& word : words) {
        longer.insert(word + c);
        if (optional) longer.insert(word);
      }
      words = std::move(longer);
    }
    if (words.size() > kMaxWordsInProgress) words = {std::string()};
  }
  return words;
}

// A plain term becomes literals (with masked spellings); a template becomes one regex
// on the skeleton, which costs far less than its expansion into thousands of literals.
void add_term(PatternTable& t, const std::string& term, uint16_t rule, const Origin& at) {
  if (!is_template(term)) {
    add_spelling(t, term, rule, at);
    if (t.masked_spellings == MaskedSpellings::looked_up) add_vocabulary(t, term);
    return;
  }
  if (auto error = template_syntax_error(term))
    throw at.error(fmt::format("term \"{}\": {}", term, *error));
  if (t.masked_spellings == MaskedSpellings::looked_up) {
    size_t read = 0;
    for (const auto& word : template_words(t, term, read, {std::string()})) add_vocabulary(t, word);
  }
  PatternMeta m;
  m.view = View::skeleton;
  m.kind = PatternKind::term;
  m.length = 0;  // variable: the start is read back from the end (TemplateStarts)
  std::string regex = template_regex(term);
  auto starts = TemplateStarts::parse(regex);
  if (!starts) throw at.error(fmt::format("term \"{}\": its regex {} cannot be read back", term, regex));
  m.template_index = static_cast<uint32_t>(t.templates.size());
  t.templates.push_back(std::move(*starts));
  t.add(std::move(regex), 0, m, rule, term);
}

// Beyond this many spellings an allow template is one regex on the skeleton, as a term
// template is: thousands of literals per tenant swelled its database and start-up
// (a threat's allow phrase of 3,330 spellings cost more than the rest of the change
// that brought it).
constexpr size_t kMaxAllowLiterals = 64;

void add_allow(PatternTable& t, const std::string& phrase, uint16_t rule, const Origin& at) {
  auto expanded = expand_template(phrase);
  if (auto* e = std::get_if<std::string>(&expanded))
    throw at.error(fmt::format("allow phrase \"{}\": {}", phrase, *e));
  const auto& spellings = std::get<std::vector<std::string>>(expanded);
  std::vector<std::string> skeletons;
  for (const auto& spelling : spellings) {
    skeletons.push_back(text::term_skeleton(spelling));
    if (skeletons.back().empty())
      throw at.error(fmt::format("allow phrase \"{}\" has no letters or digits", phrase));
  }
  if (skeletons.size() > kMaxAllowLiterals) {
    PatternMeta m;
    m.view = View::skeleton;
    m.kind = PatternKind::allow;
    m.length = 0;  // variable: the start comes from Hyperscan
    t.add(template_regex(phrase), HS_FLAG_SOM_LEFTMOST, m, rule, phrase);
    return;
  }
  for (const auto& skel : skeletons) t.add_literal(PatternKind::allow, " " + skel + " ", {}, rule, phrase);
}

// A policy regex as the raw-text database takes it. The scan buffer is bytes (its
// skeleton half is not UTF-8), so Hyperscan reads the regex byte by byte: a non-ASCII
// character becomes a group of its bytes, so that "£?" makes the whole "£" optional
// rather than its last byte. Inside [...] a byte would stand for itself, not for the
// character: refused, as is '$' anywhere but at the end (the end of the comment is
// checked after the scan, see PatternMeta::anchor_end). Returns the error, if any.
std::optional<std::string> regex_for_bytes(std::string_view source, std::string& out, bool& anchor_end) {
  out.clear();
  anchor_end = false;
  bool in_class = false;
  for (size_t i = 0; i < source.size(); ++i) {
    const auto c = static_cast<unsigned char>(source[i]);
    if (c == '\\' && i + 1 < source.size()) {
      out.append(source.substr(i, 2));
      ++i;
      continue;
    }
    if (in_class) {
      if (c >= 0x80) return "non-ASCII characters inside [...] are not supported; write them as alternatives";
      if (c == ']') in_class = false;
      out.push_back(static_cast<char>(c));
      continue;
    }
    if (c == '[') {
      in_class = true;
      out.push_back('[');
      if (i + 1 < source.size() && source[i + 1] == '^') out.push_back(source[++i]);
      if (i + 1 < source.size() && source[i + 1] == ']') out.push_back(source[++i]);  // "[]...]": a literal ]
      continue;
    }
    if (c == '^' && i == 0) {  // the start of the content: spaces before it are skipped
      out += '^';
      out += text::kAnySpaceRegex;
      out += '*';
      continue;
    }
    if (c == '$') {
      if (i + 1 != source.size()) return "'$' can only end a regex (the end of the comment)";
      anchor_end = i > 0;  // a lone "$" is left to Hyperscan, which refuses an empty match
      if (anchor_end) continue;
    }
    if (c >= 0xC0) {  // the lead byte of a multi-byte character: the group of its bytes
      const size_t length = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
      out += "(?:";
      out.append(source.substr(i, length));
      out += ')';
      i += length - 1;
      continue;
    }
    out.push_back(static_cast<char>(c));
  }
  return std::nullopt;
}

void add_regex(PatternTable& t, const std::string& source, uint16_t rule, const Origin& at) {
  PatternMeta m;
  m.view = View::raw;
  m.kind = PatternKind::regex;
  // '^' stays in the expression: the raw text starts the scanned buffer, so Hyperscan
  // anchors it natively (and cheaply). '$' cannot, the skeleton follows the text.
  std::string regex;
  bool anchor_end = false;
  if (auto error = regex_for_bytes(source, regex, anchor_end))
    throw at.error(fmt::format("regex '{}': {}", source, *error));
  m.anchor_end = anchor_end;
  t.add(std::move(regex), HS_FLAG_CASELESS | HS_FLAG_SOM_LEFTMOST, m, rule, source);
}

const Lexicon* find_lexicon(const PolicySpec& spec, const std::string& name) {
  for (const auto& l : spec.lexicons)
    if (l.name == name) return &l;
  return nullptr;
}

PatternTable build_table(const PolicySpec& spec, MaskedSpellings masked_spellings) {
  PatternTable t;
  t.masked_spellings = masked_spellings;
  for (size_t i = 0; i < spec.rules.size(); ++i) {
    const auto& r = spec.rules[i];
    const auto rule = static_cast<uint16_t>(i);
    const Origin in_rule{spec.file, r.id, r.line};
    for (const auto& term : r.terms) add_term(t, term, rule, in_rule);
    for (const auto& allow : r.allow) add_allow(t, allow, rule, in_rule);
    for (const auto& name : r.lexicons) {
      const Lexicon* lex = find_lexicon(spec, name);
      const Origin in_lexicon{lex->file, r.id, 0};  // its terms carry no line of their own
      for (const auto& term : lex->terms) add_term(t, term, rule, in_lexicon);
      for (const auto& allow : lex->allow) add_allow(t, allow, rule, in_lexicon);
    }
    for (const auto& regex : r.regexes) add_regex(t, regex, rule, in_rule);
  }
  return t;
}

// The Hyperscan release and the CPU features it builds databases for here.
std::string platform_tag() {
  hs_platform_info_t platform{};
  if (hs_populate_platform(&platform) != HS_SUCCESS) platform = {};
  return fmt::format("{} tune {} features {:x}", hs_version(), platform.tune, platform.cpu_features);
}

// The GNU build ids of the program and the libraries it has loaded (empty if none has
// one): a snapshot holds what this build's loader and compiler made of a policy, with
// this yaml-cpp, which another build, or an updated library, may not.
const std::string& build_id() {
  static const std::string ids = [] {
    std::string found;
    dl_iterate_phdr(
        [](dl_phdr_info* info, size_t, void* out) -> int {
          for (int i = 0; i < info->dlpi_phnum; ++i) {
            const ElfW(Phdr)& segment = info->dlpi_phdr[i];
            if (segment.p_type != PT_NOTE) continue;
            const char* at = reinterpret_cast<const char*>(info->dlpi_addr + segment.p_vaddr);
            const char* end = at + segment.p_memsz;
            while (at + sizeof(ElfW(Nhdr)) <= end) {
              ElfW(Nhdr) note;
              std::memcpy(&note, at, sizeof note);
              const char* name = at + sizeof note;
              const char* desc = name + ((note.n_namesz + 3) & ~3u);
              const char* next = desc + ((note.n_descsz + 3) & ~3u);
              if (next > end) break;
              if (note.n_type == NT_GNU_BUILD_ID && note.n_namesz == 4 && std::memcmp(name, "GNU", 4) == 0)
                static_cast<std::string*>(out)->append(desc, note.n_descsz);
              at = next;
            }
          }
          return 0;
        },
        &found);
    return found;
  }();
  return ids;
}

// What a cached database was built from: every expression, its flags and which of the
// two databases it went to (a later build may split them differently), and the CPU
// features Hyperscan built it for: a host without them (sharing the folder, or given a
// volume from another node) cannot run it.
uint64_t table_key(const PatternTable& t, const std::vector<DatabasePart>& part) {
  XXH3_state_t* state = XXH3_createState();
  XXH3_64bits_reset(state);
  const std::string header = "civicsift-db-5 " + platform_tag();
  XXH3_64bits_update(state, header.data(), header.size());
  for (size_t i = 0; i < t.expressions.size(); ++i) {
    const char in = "mda"[static_cast<size_t>(part[i])];
    XXH3_64bits_update(state, &in, 1);
    XXH3_64bits_update(state, &t.flags[i], sizeof t.flags[i]);
    XXH3_64bits_update(state, t.expressions[i].data(), t.expressions[i].size() + 1);  // with its NUL: a separator
  }
  const uint64_t key = XXH3_64bits_digest(state);
  XXH3_freeState(state);
  return key;
}

// Memory for a database of `bytes`, whole 2 MiB blocks on a 2 MiB boundary that ask
// for transparent huge pages: a tenant's database is megabytes that start-up writes
// whole, and here the kernel's page faults, one per 4 KiB page, cost more than the
// deserialisation itself (10 MiB written: 29 ms in 4 KiB pages, 1 ms in huge pages).
// The kernel maps a huge page only where one fits whole, hence the rounding up (a
// 1.4 MiB database takes 2 MiB). Null if it cannot be mapped.
void* map_database_memory(size_t bytes, size_t& mapped) {
  constexpr size_t kHuge = 2 << 20;
  mapped = (bytes + kHuge - 1) / kHuge * kHuge;
  const size_t reserved = mapped + kHuge;
  void* raw = ::mmap(nullptr, reserved, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const auto start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (start + kHuge - 1) / kHuge * kHuge;
  if (aligned > start) ::munmap(raw, aligned - start);
  if (const size_t tail = start + reserved - (aligned + mapped); tail > 0)
    ::munmap(reinterpret_cast<void*>(aligned + mapped), tail);
  ::madvise(reinterpret_cast<void*>(aligned), mapped, MADV_HUGEPAGE);  // a hint: without it, 4 KiB pages
  return reinterpret_cast<void*>(aligned);
}

// Deserialised straight from a mapping of the file: no buffer to fill and copy again.
HsDatabase read_cache(const fs::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return nullptr;
  struct stat st {};
  void* bytes = ::fstat(fd, &st) == 0 && st.st_size > 0
                    ? ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0)
                    : MAP_FAILED;
  ::close(fd);
  if (bytes == MAP_FAILED) return nullptr;
  const char* serialized = static_cast<const char*>(bytes);
  const auto length = static_cast<size_t>(st.st_size);
  HsDatabase db;
  size_t size = 0;
  // Below a huge page there are few page faults to save, and a mapping of its own
  // would round it up to whole pages.
  if (hs_serialized_database_size(serialized, length, &size) == HS_SUCCESS && size >= (1 << 20)) {
    size_t mapped = 0;
    if (void* at = map_database_memory(size, mapped)) {
      if (hs_deserialize_database_at(serialized, length, static_cast<hs_database_t*>(at)) == HS_SUCCESS)
        db = HsDatabase(static_cast<hs_database_t*>(at), HsDatabaseDeleter{mapped});
      else
        ::munmap(at, mapped);
    }
  }
  if (!db) {  // small, or no memory of its own to be had: Hyperscan's allocator
    hs_database_t* allocated = nullptr;
    if (hs_deserialize_database(serialized, length, &allocated) == HS_SUCCESS) db.reset(allocated);
  }
  ::munmap(bytes, length);
  if (!db) return nullptr;
  // Marked as just used: prune_cache() spares what any process sharing the folder
  // loaded in the last minutes.
  ::utimensat(AT_FDCWD, file.c_str(), nullptr, 0);
  return db;
}

// Written whole under a temporary name and renamed: a reader sees the old file or the
// new one, never part of one.
void write_cache_file(const fs::path& file, std::string_view bytes) {
  std::error_code ec;
  fs::create_directories(file.parent_path(), ec);
  // Unique among processes sharing the folder, containers whose process ids are all 1 too.
  const fs::path tmp = file.string() + fmt::format(".tmp{}-{:x}", static_cast<long>(getpid()), std::random_device{}());
  {
    std::ofstream out(tmp, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) {
      fs::remove(tmp, ec);
      return;  // the cache is an optimisation; failing to write it is not an error
    }
  }
  fs::rename(tmp, file, ec);
  if (ec) fs::remove(tmp, ec);
}

void write_cache(const fs::path& file, const hs_database_t* db) {
  char* bytes = nullptr;
  size_t length = 0;
  if (hs_serialize_database(db, &bytes, &length) != HS_SUCCESS) return;
  write_cache_file(file, std::string_view(bytes, length));
  std::free(bytes);
}

// Which database each pattern of `t` compiles into (the *_starts parts aside).
std::vector<DatabasePart> partition(const PatternTable& t) {
  std::vector<DatabasePart> part(t.expressions.size(), DatabasePart::main);
  for (unsigned i = 0; i < t.expressions.size(); ++i) {
    if (t.meta[i].view == View::raw && regex_requires_digit(t.expressions[i])) part[i] = DatabasePart::digits;
    else if (is_allow_pattern(t.meta[i])) part[i] = DatabasePart::allows;
  }
  // Nothing else to scan for: one database, as before.
  if (std::find(part.begin(), part.end(), DatabasePart::main) == part.end()) part.assign(part.size(), DatabasePart::main);
  return part;
}

// The patterns of each database, by partition(): the digit regexes and the main
// database's raw-text regexes go to their part with starts too.
std::array<std::vector<unsigned>, kDatabaseParts> ids_by_part(const PatternTable& t, const std::vector<DatabasePart>& part) {
  std::array<std::vector<unsigned>, kDatabaseParts> ids;
  auto ids_of = [&](DatabasePart p) -> std::vector<unsigned>& { return ids[static_cast<size_t>(p)]; };
  for (unsigned i = 0; i < t.expressions.size(); ++i) {
    ids_of(part[i]).push_back(i);
    if (part[i] == DatabasePart::digits) ids_of(DatabasePart::digit_starts).push_back(i);  // its first scan finds no hits
    else if (part[i] == DatabasePart::main && needs_start_of_match(t.meta[i])) ids_of(DatabasePart::main_starts).push_back(i);
  }
  return ids;
}

// The first scans (main, digits) only find which patterns match where they end;
// start-of-match tracking is for the *_starts parts alone.
unsigned part_flags(unsigned flags, DatabasePart part) {
  return part == DatabasePart::main || part == DatabasePart::digits ? flags & ~HS_FLAG_SOM_LEFTMOST : flags;
}

constexpr const char* kPartSuffix[kDatabaseParts] = {".hsdb", ".digits.hsdb", ".allows.hsdb", ".starts.hsdb",
                                                     ".digits.starts.hsdb"};

fs::path database_file(const fs::path& cache_dir, uint64_t key, DatabasePart part) {
  return cache_dir / fmt::format("{:016x}{}", key, kPartSuffix[static_cast<size_t>(part)]);
}

fs::path shared_database_file(const fs::path& cache_dir, uint64_t key, DatabasePart part) {
  return cache_dir / fmt::format("{:016x}.shared{}", key, kPartSuffix[static_cast<size_t>(part)]);
}

fs::path shared_ids_file(const fs::path& cache_dir, uint64_t key) {
  return cache_dir / fmt::format("{:016x}.shared.ids", key);
}

// One snapshot per policy file, build and platform: an edited policy replaces its
// snapshot rather than adding one. Empty when the program has no build id to name.
fs::path snapshot_file(const fs::path& cache_dir, const fs::path& policy_file) {
  if (build_id().empty()) return {};
  std::error_code ec;
  fs::path where = fs::absolute(policy_file, ec);
  if (ec) return {};
  std::string named = "civicsift-policy-snapshot " + platform_tag() + '\0' + build_id() + '\0';
  named += where.lexically_normal().string();
  return cache_dir / fmt::format("{:016x}.policy", XXH3_64bits(named.data(), named.size()));
}

// `policy_file` as its snapshot has it, if the cache holds one that this build wrote
// for it, its files still hash to the version it was made from, and its databases are
// there too. Else null: the caller loads and compiles.
std::unique_ptr<CompiledPolicy> load_snapshot(const fs::path& cache_dir, const fs::path& policy_file) {
  const auto started = std::chrono::steady_clock::now();
  const fs::path file = snapshot_file(cache_dir, policy_file);
  if (file.empty()) return nullptr;
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return nullptr;
  struct stat st {};
  // A snapshot is a few hundred KiB; anything far larger is not one (and allocating
  // it could fail where nothing may throw).
  constexpr off_t kMaxSnapshotBytes = 64 << 20;
  const bool plausible = ::fstat(fd, &st) == 0 && st.st_size > 0 && st.st_size <= kMaxSnapshotBytes;
  std::string bytes(plausible ? static_cast<size_t>(st.st_size) : 0, '\0');
  const bool read_whole = !bytes.empty() && ::read(fd, bytes.data(), bytes.size()) == st.st_size;
  ::close(fd);
  if (!read_whole) return nullptr;
  auto snapshot = decode_snapshot(bytes);
  if (!snapshot) return nullptr;
  PolicySpec& spec = snapshot->spec;
  spec.file = policy_file;
  for (auto& lex : spec.lexicons) lex.file = lexicon_file(policy_file, lex.name);
  if (current_version(spec) != spec.version) return nullptr;
  PolicyDatabases dbs;
  for (size_t i = 0; i < kDatabaseParts; ++i) {
    if (!snapshot->has_part[i]) continue;
    dbs.parts[i] = read_cache(database_file(cache_dir, snapshot->database_key, static_cast<DatabasePart>(i)));
    if (!dbs.parts[i]) return nullptr;
  }
  ::utimensat(AT_FDCWD, file.c_str(), nullptr, 0);  // just used, as read_cache() marks a database
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return std::make_unique<CompiledPolicy>(std::move(spec), std::move(dbs), std::move(snapshot->index),
                                          PolicySource::snapshot, seconds, snapshot->database_key);
}

void save_snapshot(const fs::path& cache_dir, const fs::path& policy_file, const CompiledPolicy& policy) {
  if (const fs::path file = snapshot_file(cache_dir, policy_file); !file.empty())
    write_cache_file(file, encode_snapshot(policy));
}

}  // namespace

void prune_cache(const fs::path& dir, const PolicySet& in_use) {
  std::set<std::string> used;
  for (const auto& p : in_use.policies()) {
    for (size_t part = 0; part < kDatabaseParts; ++part)
      used.insert(database_file({}, p->cache_key(), static_cast<DatabasePart>(part)).string());
    used.insert(snapshot_file({}, p->spec().file).string());
    if (const SharedDatabases* shared = p->shared()) {
      for (size_t part = 0; part < kDatabaseParts; ++part)
        used.insert(shared_database_file({}, shared->key, static_cast<DatabasePart>(part)).string());
      used.insert(shared_ids_file({}, shared->key).string());
    }
  }
  const auto old_enough = fs::file_time_type::clock::now() - std::chrono::minutes(10);
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const bool ours = name.ends_with(".hsdb") || name.find(".hsdb.tmp") != std::string::npos ||
                      name.ends_with(".policy") || name.find(".policy.tmp") != std::string::npos ||
                      name.ends_with(".shared.ids") || name.find(".shared.ids.tmp") != std::string::npos;
    if (!ours || used.count(name)) continue;
    std::error_code file_ec;
    if (it->last_write_time(file_ec) < old_enough && !file_ec) fs::remove(it->path(), file_ec);
  }
}

fs::path default_cache_dir() {
  if (const char* d = std::getenv("CIVICSIFT_CACHE_DIR"); d && *d) return d;
  if (const char* d = std::getenv("XDG_CACHE_HOME"); d && *d) return fs::path(d) / "civicsift";
  if (const char* h = std::getenv("HOME"); h && *h) return fs::path(h) / ".cache" / "civicsift";
  return {};
}

std::variant<std::vector<PatternExpression>, PolicyError> policy_expressions(const PolicySpec& spec) {
  PatternTable table;
  try {
    table = build_table(spec, MaskedSpellings::literals);
  } catch (const PolicyError& e) {
    return e;
  }
  std::vector<PatternExpression> out;
  for (size_t i = 0; i < table.expressions.size(); ++i)
    out.push_back({std::move(table.expressions[i]), table.flags[i], table.meta[i].view});
  return out;
}

namespace {

using Compiled = std::variant<std::unique_ptr<CompiledPolicy>, PolicyError>;

// A policy with databases of its own: share_databases() may still give it the set's.
Compiled compile_unshared(PolicySpec spec, const CompileOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  PatternTable table;
  try {
    table = build_table(spec, MaskedSpellings::looked_up);
  } catch (const PolicyError& e) {
    return e;
  }
  const std::vector<DatabasePart> part = partition(table);
  const std::array<std::vector<unsigned>, kDatabaseParts> ids = ids_by_part(table, part);
  auto ids_of = [&](DatabasePart p) -> const std::vector<unsigned>& { return ids[static_cast<size_t>(p)]; };
  const uint64_t key = table_key(table, part);

  // A policy of only duplicate-post rules has nothing to scan for: no database
  // (Hyperscan refuses an empty one), and so nothing to cache.
  const bool scans = !ids_of(DatabasePart::main).empty();
  std::array<fs::path, kDatabaseParts> files;
  if (!options.cache_dir.empty() && scans)
    for (size_t p = 0; p < kDatabaseParts; ++p)
      if (!ids[p].empty()) files[p] = database_file(options.cache_dir, key, static_cast<DatabasePart>(p));

  PolicyDatabases dbs;
  bool from_cache = scans && !options.cache_dir.empty();
  for (size_t p = 0; p < kDatabaseParts && from_cache; ++p)
    if (!ids[p].empty()) from_cache = (dbs.parts[p] = read_cache(files[p])) != nullptr;
  if (scans && !from_cache) {
    auto compile_ids = [&](DatabasePart p) -> std::variant<HsDatabase, PolicyError> {
      const auto& part_ids = ids_of(p);
      std::vector<const char*> exprs;
      std::vector<unsigned> flags;
      for (unsigned id : part_ids) {
        exprs.push_back(table.expressions[id].c_str());
        flags.push_back(part_flags(table.flags[id], p));
      }
      hs_database_t* db = nullptr;
      hs_compile_error_t* err = nullptr;
      if (hs_compile_multi(exprs.data(), flags.data(), part_ids.data(), static_cast<unsigned>(part_ids.size()),
                           HS_MODE_BLOCK, nullptr, &db, &err) == HS_SUCCESS)
        return HsDatabase(db);
      PolicyError e{spec.file, "", err ? err->message : "Hyperscan compile failed"};
      if (err && err->expression >= 0 && static_cast<size_t>(err->expression) < part_ids.size()) {
        const auto& [rule, source] = table.origin[part_ids[static_cast<size_t>(err->expression)]];
        e.rule = spec.rules[static_cast<size_t>(rule)].id;
        e.line = spec.rules[static_cast<size_t>(rule)].line;
        e.message = fmt::format("pattern '{}': {}", source, err->message);
      }
      hs_free_compile_error(err);
      return e;
    };
    for (size_t p = 0; p < kDatabaseParts; ++p) {
      dbs.parts[p].reset();
      if (ids[p].empty()) continue;
      auto compiled = compile_ids(static_cast<DatabasePart>(p));
      if (auto* e = std::get_if<PolicyError>(&compiled)) return *e;
      dbs.parts[p] = std::move(std::get<HsDatabase>(compiled));
    }
    for (size_t p = 0; p < kDatabaseParts; ++p)
      if (!files[p].empty()) write_cache(files[p], dbs.parts[p].get());
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  auto policy = std::make_unique<CompiledPolicy>(
      std::move(spec), std::move(dbs), table.finish(),
      from_cache ? PolicySource::cached_databases : PolicySource::compiled, seconds, key);
  // For the next start-up (load_policy_set), a reload's compile included.
  if (!options.cache_dir.empty() && !policy->spec().file.empty())
    save_snapshot(options.cache_dir, policy->spec().file, *policy);
  return policy;
}

}  // namespace

std::variant<std::shared_ptr<const CompiledPolicy>, PolicyError> compile_policy(PolicySpec spec,
                                                                                  const CompileOptions& options) {
  auto compiled = compile_unshared(std::move(spec), options);
  if (auto* e = std::get_if<PolicyError>(&compiled)) return *e;
  return std::shared_ptr<const CompiledPolicy>(std::get<std::unique_ptr<CompiledPolicy>>(std::move(compiled)));
}

namespace {

// The shared databases' ids -> each sharing policy's pattern ids, as the compile cache
// keeps them beside it: this header, the number of policies and of shared ids, then
// per policy (in the order of their cache keys) its cache key and one id per shared id.
constexpr std::string_view kSharedIdsHeader = "civicsift-shared-ids-1\n";

std::string encode_shared_ids(std::span<CompiledPolicy* const> sharing, const std::vector<std::vector<uint32_t>>& ids) {
  std::string out(kSharedIdsHeader);
  auto put = [&](const auto& v) { out.append(reinterpret_cast<const char*>(&v), sizeof v); };
  put(static_cast<uint32_t>(sharing.size()));
  put(static_cast<uint32_t>(ids.front().size()));
  for (size_t k = 0; k < sharing.size(); ++k) {
    put(sharing[k]->cache_key());
    out.append(reinterpret_cast<const char*>(ids[k].data()), ids[k].size() * sizeof(uint32_t));
  }
  return out;
}

// Nothing unless the file holds ids for exactly these policies, each a pattern of its own or kNotOurs.
std::optional<std::vector<std::vector<uint32_t>>> read_shared_ids(const fs::path& file,
                                                                   std::span<CompiledPolicy* const> sharing) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return std::nullopt;
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!bytes.starts_with(kSharedIdsHeader)) return std::nullopt;
  size_t at = kSharedIdsHeader.size();
  auto get = [&](auto& v) {
    if (bytes.size() - at < sizeof v) return false;
    std::memcpy(&v, bytes.data() + at, sizeof v);
    at += sizeof v;
    return true;
  };
  uint32_t policies = 0, count = 0;
  if (!get(policies) || !get(count) || policies != sharing.size() ||
      bytes.size() - at != policies * (sizeof(uint64_t) + uint64_t{count} * sizeof(uint32_t)))
    return std::nullopt;
  std::vector<std::vector<uint32_t>> ids(policies, std::vector<uint32_t>(count));
  for (size_t k = 0; k < policies; ++k) {
    uint64_t key = 0;
    get(key);
    if (key != sharing[k]->cache_key()) return std::nullopt;
    std::memcpy(ids[k].data(), bytes.data() + at, count * sizeof(uint32_t));
    at += count * sizeof(uint32_t);
    for (uint32_t id : ids[k])
      if (id != CompiledPolicy::kNotOurs && id >= sharing[k]->pattern_count()) return std::nullopt;
  }
  ::utimensat(AT_FDCWD, file.c_str(), nullptr, 0);  // just used, as read_cache() marks a database
  return ids;
}

// Names the shared databases of these policies (in the order of their cache keys).
uint64_t shared_key(std::span<CompiledPolicy* const> sharing) {
  std::string named = "civicsift-shared-1 " + platform_tag();
  for (const CompiledPolicy* p : sharing) named += fmt::format(" {:016x}", p->cache_key());
  return XXH3_64bits(named.data(), named.size());
}

}  // namespace

void share_databases(std::span<CompiledPolicy* const> policies, const CompileOptions& options) {
  std::vector<CompiledPolicy*> sharing;
  for (CompiledPolicy* p : policies)
    if (p->has_part_[static_cast<size_t>(DatabasePart::main)] && !p->shared_) sharing.push_back(p);
  if (sharing.size() < 2) return;
  std::sort(sharing.begin(), sharing.end(),
            [](const CompiledPolicy* a, const CompiledPolicy* b) { return a->cache_key() < b->cache_key(); });
  auto has_part = [](const CompiledPolicy* p, size_t part) { return p->has_part_[part]; };
  auto shared = std::make_shared<SharedDatabases>();
  std::vector<std::vector<uint32_t>> ids;
  const bool cached = !options.cache_dir.empty();
  auto all_parts_there = [&] {
    for (size_t part = 0; part < kDatabaseParts; ++part)
      if (!shared->dbs.parts[part] && std::any_of(sharing.begin(), sharing.end(), [&](auto* p) { return has_part(p, part); }))
        return false;
    return true;
  };
  if (cached) {
    shared->key = shared_key(sharing);
    if (auto read = read_shared_ids(shared_ids_file(options.cache_dir, shared->key), sharing)) {
      for (size_t part = 0; part < kDatabaseParts; ++part)
        if (std::any_of(sharing.begin(), sharing.end(), [&](auto* p) { return has_part(p, part); }))
          shared->dbs.parts[part] = read_cache(shared_database_file(options.cache_dir, shared->key, static_cast<DatabasePart>(part)));
      ids = std::move(*read);
      shared->source = PolicySource::cached_databases;
    }
  }
  if (ids.empty() || !all_parts_there()) {
    shared->dbs = {};
    // Each policy's expressions, from its tables built again (a snapshot keeps no
    // expressions); a policy whose tables come out other than its databases were built
    // from keeps its own.
    std::vector<std::optional<PatternTable>> tables(sharing.size());
    parallel_for(sharing.size(), [&](size_t k) {
      try {
        PatternTable t = build_table(sharing[k]->spec(), MaskedSpellings::looked_up);
        if (table_key(t, partition(t)) == sharing[k]->cache_key()) tables[k] = std::move(t);
      } catch (const PolicyError&) {
      }
    });
    std::vector<CompiledPolicy*> recovered;
    std::vector<std::array<std::vector<unsigned>, kDatabaseParts>> part_ids;
    for (size_t k = 0; k < sharing.size(); ++k)
      if (tables[k]) {
        recovered.push_back(sharing[k]);
        part_ids.push_back(ids_by_part(*tables[k], partition(*tables[k])));
      }
    std::erase_if(tables, [](const auto& t) { return !t; });
    sharing = std::move(recovered);
    if (sharing.size() < 2) return;
    // Per part, the distinct (flags, expression) pairs, in the order first seen, with
    // ids numbered on across the parts. A policy may have one expression as several
    // patterns (literals whose run lengths differ): its n-th is the n-th shared pattern
    // of that expression, so each shared id maps to one of its patterns.
    struct Distinct {
      unsigned flags;
      const std::string* expression;
    };
    std::array<std::vector<Distinct>, kDatabaseParts> distinct;
    std::array<uint32_t, kDatabaseParts> first_id{};
    std::vector<std::vector<std::pair<uint32_t, uint32_t>>> own(sharing.size());  // per policy: (shared id, its id)
    uint32_t next_id = 0;
    for (size_t part = 0; part < kDatabaseParts; ++part) {
      first_id[part] = next_id;
      std::unordered_map<std::string, uint32_t> shared_id;
      for (size_t k = 0; k < sharing.size(); ++k) {
        const PatternTable& t = *tables[k];
        std::unordered_map<std::string, uint32_t> seen;
        for (unsigned i : part_ids[k][part]) {
          const unsigned flags = part_flags(t.flags[i], static_cast<DatabasePart>(part));
          std::string key(reinterpret_cast<const char*>(&flags), sizeof flags);
          key += t.expressions[i];
          const uint32_t occurrence = seen[key]++;
          key.append(reinterpret_cast<const char*>(&occurrence), sizeof occurrence);
          auto [it, inserted] = shared_id.emplace(std::move(key), next_id);
          if (inserted) {
            distinct[part].push_back({flags, &t.expressions[i]});
            ++next_id;
          }
          own[k].emplace_back(it->second, i);
        }
      }
    }
    // The parts compile side by side, as tenants do.
    std::array<bool, kDatabaseParts> failed{};
    parallel_for(kDatabaseParts, [&](size_t part) {
      if (distinct[part].empty()) return;
      std::vector<const char*> expressions;
      std::vector<unsigned> flags, numbers;
      for (size_t j = 0; j < distinct[part].size(); ++j) {
        expressions.push_back(distinct[part][j].expression->c_str());
        flags.push_back(distinct[part][j].flags);
        numbers.push_back(first_id[part] + static_cast<unsigned>(j));
      }
      hs_database_t* db = nullptr;
      hs_compile_error_t* err = nullptr;
      if (hs_compile_multi(expressions.data(), flags.data(), numbers.data(), static_cast<unsigned>(expressions.size()),
                           HS_MODE_BLOCK, nullptr, &db, &err) == HS_SUCCESS)
        shared->dbs.parts[part].reset(db);
      else failed[part] = true;
      hs_free_compile_error(err);
    });
    // Each compiled alone, so together they were too large: they keep their own.
    if (std::find(failed.begin(), failed.end(), true) != failed.end()) return;
    shared->source = PolicySource::compiled;
    ids.assign(sharing.size(), std::vector<uint32_t>(next_id, CompiledPolicy::kNotOurs));
    for (size_t k = 0; k < sharing.size(); ++k)
      for (auto [shared_id_of, its_id] : own[k]) ids[k][shared_id_of] = its_id;
    if (cached) {
      shared->key = shared_key(sharing);
      for (size_t part = 0; part < kDatabaseParts; ++part)
        if (shared->dbs.parts[part])
          write_cache(shared_database_file(options.cache_dir, shared->key, static_cast<DatabasePart>(part)),
                      shared->dbs.parts[part].get());
      write_cache_file(shared_ids_file(options.cache_dir, shared->key), encode_shared_ids(sharing, ids));
    }
  }
  std::shared_ptr<const SharedDatabases> in_common = std::move(shared);
  for (size_t k = 0; k < sharing.size(); ++k) {
    CompiledPolicy& p = *sharing[k];
    p.dbs_ = {};
    p.shared_ = in_common;
    p.shared_ids_ = std::move(ids[k]);
  }
}

std::vector<std::shared_ptr<const CompiledPolicy>> with_shared_databases(
    const std::vector<std::shared_ptr<const CompiledPolicy>>& policies, const CompileOptions& options) {
  std::vector<std::unique_ptr<CompiledPolicy>> copies;
  std::vector<CompiledPolicy*> sharing;
  for (const auto& p : policies) {
    copies.push_back(std::unique_ptr<CompiledPolicy>(new CompiledPolicy(*p, CompiledPolicy::WithoutDatabases{})));
    sharing.push_back(copies.back().get());
  }
  share_databases(sharing, options);
  for (const auto& copy : copies)
    if (!copy->shared_ && std::find(copy->has_part_.begin(), copy->has_part_.end(), true) != copy->has_part_.end())
      return policies;  // it would have nothing to scan
  return {std::make_move_iterator(copies.begin()), std::make_move_iterator(copies.end())};
}

namespace {

// The first error in folder order, as a serial load would report it, else the set, its
// policies sharing their databases.
std::variant<std::shared_ptr<const PolicySet>, PolicyError> gather(std::vector<std::optional<Compiled>>& results,
                                                                   const CompileOptions& options) {
  std::vector<CompiledPolicy*> policies;
  std::set<std::string_view> tenants;
  for (auto& r : results) {
    if (auto* e = std::get_if<PolicyError>(&*r)) return *e;
    CompiledPolicy* policy = std::get<std::unique_ptr<CompiledPolicy>>(*r).get();
    if (!tenants.insert(policy->tenant()).second)
      return PolicyError{policy->spec().file, "", fmt::format("tenant \"{}\" is defined twice", policy->tenant())};
    policies.push_back(policy);
  }
  share_databases(policies, options);
  std::vector<std::shared_ptr<const CompiledPolicy>> compiled;
  for (auto& r : results) compiled.emplace_back(std::get<std::unique_ptr<CompiledPolicy>>(std::move(*r)));
  auto set = std::make_shared<const PolicySet>(std::move(compiled));
  if (!options.cache_dir.empty()) prune_cache(options.cache_dir, *set);
  return set;
}

}  // namespace

std::variant<std::shared_ptr<const PolicySet>, PolicyError> compile_policy_set(std::vector<PolicySpec> specs,
                                                                                 const CompileOptions& options) {
  // Tenants compile (or load from the cache) side by side: a cold compile of five
  // tenants takes seconds.
  std::vector<std::optional<Compiled>> results(specs.size());
  parallel_for(specs.size(), [&](size_t i) { results[i] = compile_unshared(std::move(specs[i]), options); });
  return gather(results, options);
}

std::variant<std::shared_ptr<const PolicySet>, PolicyError> load_policy_set(const fs::path& dir,
                                                                              const CompileOptions& options) {
  auto listed = policy_files(dir);
  if (auto* e = std::get_if<PolicyError>(&listed)) return *e;
  const auto& files = std::get<std::vector<fs::path>>(listed);
  // Every file first, side by side: from its snapshot while its files are unchanged,
  // else from its YAML. Once all have loaded and their tenants are distinct (the first
  // problem in folder order is the one reported), the others compile side by side
  // (their databases perhaps from the cache), which snapshots them.
  const bool cached = !options.cache_dir.empty();
  using Loaded = std::variant<std::unique_ptr<CompiledPolicy>, PolicySpec, PolicyError>;
  std::vector<std::optional<Loaded>> loaded(files.size());
  parallel_for(files.size(), [&](size_t i) {
    if (cached) {
      if (auto policy = load_snapshot(options.cache_dir, files[i])) {
        loaded[i] = std::move(policy);
        return;
      }
    }
    auto spec = load_policy(files[i]);
    if (auto* e = std::get_if<PolicyError>(&spec)) loaded[i] = std::move(*e);
    else loaded[i] = std::get<PolicySpec>(std::move(spec));
  });
  std::set<std::string> tenants;
  std::vector<size_t> to_compile;
  for (size_t i = 0; i < files.size(); ++i) {
    if (auto* e = std::get_if<PolicyError>(&*loaded[i])) return *e;
    const auto* spec = std::get_if<PolicySpec>(&*loaded[i]);
    const std::string& tenant = spec ? spec->tenant : std::get<std::unique_ptr<CompiledPolicy>>(*loaded[i])->tenant();
    if (!tenants.insert(tenant).second)
      return PolicyError{files[i], "", fmt::format("tenant \"{}\" is defined twice", tenant)};
    if (spec) to_compile.push_back(i);
  }
  std::vector<std::optional<Compiled>> results(files.size());
  for (size_t i = 0; i < files.size(); ++i)
    if (auto* policy = std::get_if<std::unique_ptr<CompiledPolicy>>(&*loaded[i])) results[i] = std::move(*policy);
  parallel_for(to_compile.size(), [&](size_t k) {
    const size_t i = to_compile[k];
    results[i] = compile_unshared(std::get<PolicySpec>(std::move(*loaded[i])), options);  // and snapshot
  });
  return gather(results, options);
}

}  // namespace civicsift
