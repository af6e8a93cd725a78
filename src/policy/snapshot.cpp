#include "policy/snapshot.h"

#include <xxhash.h>

#include <cstring>
#include <type_traits>

namespace civicsift {
namespace {

// Bumped whenever what is written changes; a snapshot is also named after the build
// that wrote it (compiler.cpp), so this guards against a format mistake, not old files.
constexpr std::string_view kMagic = "civicsift-policy-snapshot-4\n";

class Writer {
 public:
  template <typename T>
  void number(T v) {
    static_assert(std::is_integral_v<T> || std::is_enum_v<T>);
    char bytes[sizeof v];
    std::memcpy(bytes, &v, sizeof v);
    out_.append(bytes, sizeof v);
  }
  void text(std::string_view s) {
    number(static_cast<uint64_t>(s.size()));
    out_.append(s);
  }
  void texts(const std::vector<std::string>& list) {
    number(static_cast<uint64_t>(list.size()));
    for (const auto& s : list) text(s);
  }
  template <typename T>
  void numbers(const std::vector<T>& list) {
    number(static_cast<uint64_t>(list.size()));
    for (T v : list) number(v);
  }
  std::string finish() {  // the body's checksum last: a torn or altered file is refused
    const uint64_t sum = XXH3_64bits(out_.data(), out_.size());
    number(sum);
    return std::move(out_);
  }

 private:
  std::string out_;
};

// Reads what Writer wrote; past the end or on a value out of range it stops reading,
// and ok() says the snapshot is unusable.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : rest_(bytes) {}
  bool ok() const { return ok_; }
  bool done() const { return ok_ && rest_.empty(); }
  void fail() { ok_ = false; }

  template <typename T>
  T number() {
    T v{};
    if (!ok_ || rest_.size() < sizeof v) return fail(), v;
    std::memcpy(&v, rest_.data(), sizeof v);
    rest_.remove_prefix(sizeof v);
    return v;
  }
  // An enum stored as its underlying integer, checked against its last value.
  template <typename E>
  E choice(E last) {
    const auto v = number<std::underlying_type_t<E>>();
    if (v > static_cast<std::underlying_type_t<E>>(last)) fail();
    return ok_ ? static_cast<E>(v) : E{};
  }
  bool flag() {
    const auto v = number<uint8_t>();
    if (v > 1) fail();
    return v == 1;
  }
  std::string text() {
    const uint64_t n = number<uint64_t>();
    if (!ok_ || n > rest_.size()) return fail(), std::string{};
    std::string s(rest_.substr(0, n));
    rest_.remove_prefix(n);
    return s;
  }
  std::vector<std::string> texts() {
    std::vector<std::string> list(count(sizeof(uint64_t)));
    for (auto& s : list) s = text();
    return list;
  }
  template <typename T>
  std::vector<T> numbers() {
    std::vector<T> list(count(sizeof(T)));
    for (auto& v : list) v = number<T>();
    return list;
  }
  // A count of items of at least `item_bytes` each: more than the bytes left could
  // hold is corruption, refused before it sizes a vector.
  size_t count(size_t item_bytes) {
    const uint64_t n = number<uint64_t>();
    if (!ok_ || n > rest_.size() / item_bytes) return fail(), 0;
    return static_cast<size_t>(n);
  }

 private:
  std::string_view rest_;
  bool ok_ = true;
};

void write_rule(Writer& w, const RuleSpec& r) {
  w.text(r.id);
  w.number(r.category);
  w.text(r.clause);
  w.number(r.action);
  w.number(static_cast<int32_t>(r.score));
  w.number(r.direction);
  w.texts(r.routes);
  w.texts(r.terms);
  w.texts(r.lexicons);
  w.texts(r.regexes);
  w.number(r.validator);
  w.texts(r.allow);
  w.texts(r.examples_match);
  w.texts(r.examples_no_match);
  w.number(r.duplicate_within_ms);
  w.number(static_cast<uint8_t>(r.during_election));
  w.number(static_cast<int32_t>(r.line));
}

RuleSpec read_rule(Reader& r) {
  RuleSpec rule;
  rule.id = r.text();
  rule.category = r.choice(Category::off_topic);
  rule.clause = r.text();
  rule.action = r.choice(Action::escalate);
  rule.score = r.number<int32_t>();
  rule.direction = r.choice(DirectionScope::outbound);
  rule.routes = r.texts();
  rule.terms = r.texts();
  rule.lexicons = r.texts();
  rule.regexes = r.texts();
  rule.validator = r.choice(Validator::street_address);
  rule.allow = r.texts();
  rule.examples_match = r.texts();
  rule.examples_no_match = r.texts();
  rule.duplicate_within_ms = r.number<int64_t>();
  rule.during_election = r.flag();
  rule.line = r.number<int32_t>();
  return rule;
}

void write_spec(Writer& w, const PolicySpec& s) {
  w.text(s.tenant);
  w.text(s.name);
  w.text(s.source);
  w.number(static_cast<uint64_t>(s.lexicons.size()));
  for (const auto& lex : s.lexicons) {
    w.text(lex.name);
    w.texts(lex.terms);
    w.texts(lex.allow);
  }
  w.number(static_cast<int32_t>(s.thresholds.review));
  w.number(static_cast<int32_t>(s.thresholds.remove));
  w.number(static_cast<int32_t>(s.thresholds.escalate));
  w.texts(s.allow_phones);
  w.texts(s.allow_domains);
  w.number(static_cast<uint64_t>(s.rules.size()));
  for (const auto& rule : s.rules) write_rule(w, rule);
  w.number(static_cast<int32_t>(s.repeat_offenders.removals));
  w.number(s.repeat_offenders.within_ms);
  w.text(s.repeat_offenders.route);
  w.text(s.repeat_offenders.clause);
  w.number(static_cast<uint8_t>(s.election.has_value()));
  if (s.election) {
    w.number(s.election->open_ms);
    w.number(s.election->close_ms);
  }
  w.text(s.version);
}

PolicySpec read_spec(Reader& r) {
  PolicySpec s;
  s.tenant = r.text();
  s.name = r.text();
  s.source = r.text();
  s.lexicons.resize(r.count(3 * sizeof(uint64_t)));
  for (auto& lex : s.lexicons) {
    lex.name = r.text();
    lex.terms = r.texts();
    lex.allow = r.texts();
  }
  s.thresholds.review = r.number<int32_t>();
  s.thresholds.remove = r.number<int32_t>();
  s.thresholds.escalate = r.number<int32_t>();
  s.allow_phones = r.texts();
  s.allow_domains = r.texts();
  s.rules.resize(r.count(sizeof(uint64_t)));
  for (auto& rule : s.rules) rule = read_rule(r);
  s.repeat_offenders.removals = r.number<int32_t>();
  s.repeat_offenders.within_ms = r.number<int64_t>();
  s.repeat_offenders.route = r.text();
  s.repeat_offenders.clause = r.text();
  if (r.flag()) {
    ElectionPeriod e;
    e.open_ms = r.number<int64_t>();
    e.close_ms = r.number<int64_t>();
    s.election = e;
  }
  s.version = r.text();
  return s;
}

void write_index(Writer& w, const PatternIndex& index) {
  w.number(static_cast<uint64_t>(index.patterns.size()));
  for (const auto& p : index.patterns) {
    w.number(p.view);
    w.number(p.kind);
    w.number(static_cast<uint8_t>(p.anchor_end));
    w.number(p.rule_count);
    w.number(p.rules_begin);
    w.number(p.length);
    w.number(p.profile_begin);
    w.number(p.template_index);
  }
  w.numbers(index.rules);
  w.numbers(index.run_profiles);
  w.number(static_cast<uint64_t>(index.templates.size()));
  for (const auto& t : index.templates) w.text(t.regex());
  for (const MaskedTerms* terms : {&index.masked, &index.vocabulary}) {
    w.number(static_cast<uint64_t>(terms->size()));
    terms->for_each([&](std::string_view skeleton, std::span<const uint16_t> runs, uint16_t rule) {
      w.text(skeleton);
      w.numbers(std::vector<uint16_t>(runs.begin(), runs.end()));
      w.number(rule);
    });
  }
}

// The references a scan follows within the index (a pattern's rules, at least one,
// and its run profile; rule indexes) are checked to lie inside what was read. The
// checksum catches damage, not forgery: like the databases beside it, the cache folder
// is trusted (a forged snapshot could name fewer patterns than its database reports).
bool read_index(Reader& r, PatternIndex& index, size_t rule_count) {
  index.patterns.resize(r.count(21));  // the bytes write_index gives a pattern
  for (auto& p : index.patterns) {
    p.view = r.choice(View::skeleton);
    p.kind = r.choice(PatternKind::regex);
    p.anchor_end = r.flag();
    p.rule_count = r.number<uint16_t>();
    p.rules_begin = r.number<uint32_t>();
    p.length = r.number<uint32_t>();
    p.profile_begin = r.number<uint32_t>();
    p.template_index = r.number<uint32_t>();
  }
  index.rules = r.numbers<uint16_t>();
  index.run_profiles = r.numbers<uint16_t>();
  const size_t templates = r.count(sizeof(uint64_t));
  for (size_t i = 0; i < templates && r.ok(); ++i) {
    auto t = TemplateStarts::parse(r.text());
    if (!t) return false;
    index.templates.push_back(std::move(*t));
  }
  for (MaskedTerms* terms : {&index.masked, &index.vocabulary}) {
    const size_t count = r.count(3 * sizeof(uint64_t));
    for (size_t i = 0; i < count && r.ok(); ++i) {
      const std::string skeleton = r.text();
      const auto runs = r.numbers<uint16_t>();
      const auto rule = r.number<uint16_t>();
      if (!r.ok() || rule >= rule_count) return false;
      try {
        terms->add(skeleton, runs, rule);
      } catch (const std::invalid_argument&) {
        return false;
      }
    }
  }
  if (!r.ok()) return false;
  for (const auto& p : index.patterns) {
    const size_t profile = p.kind == PatternKind::term ? p.length : 0;
    if (p.rule_count == 0 || size_t{p.rules_begin} + p.rule_count > index.rules.size() ||
        size_t{p.profile_begin} + profile > index.run_profiles.size() ||
        (is_term_template(p) && p.template_index >= index.templates.size()))
      return false;
  }
  for (uint16_t rule : index.rules)
    if (rule >= rule_count) return false;
  return true;
}

}  // namespace

std::string encode_snapshot(const CompiledPolicy& policy) {
  Writer w;
  write_spec(w, policy.spec());
  write_index(w, policy.index());
  w.number(policy.cache_key());
  for (size_t part = 0; part < kDatabaseParts; ++part)
    w.number(static_cast<uint8_t>(policy.database(static_cast<DatabasePart>(part)) != nullptr));
  return std::string(kMagic) + w.finish();
}

std::optional<PolicySnapshot> decode_snapshot(std::string_view bytes) {
  if (!bytes.starts_with(kMagic) || bytes.size() < kMagic.size() + sizeof(uint64_t)) return std::nullopt;
  bytes.remove_prefix(kMagic.size());
  const std::string_view body = bytes.substr(0, bytes.size() - sizeof(uint64_t));
  uint64_t sum = 0;
  std::memcpy(&sum, bytes.data() + body.size(), sizeof sum);
  if (XXH3_64bits(body.data(), body.size()) != sum) return std::nullopt;

  Reader r(body);
  PolicySnapshot snapshot;
  snapshot.spec = read_spec(r);
  if (!r.ok() || !read_index(r, snapshot.index, snapshot.spec.rules.size())) return std::nullopt;
  snapshot.database_key = r.number<uint64_t>();
  for (bool& has : snapshot.has_part) has = r.flag();
  if (!r.done()) return std::nullopt;
  return snapshot;
}

}  // namespace civicsift
