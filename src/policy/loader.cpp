#include "policy/loader.h"

#include "common/parallel.h"
#include "common/time.h"

#include <fmt/format.h>
#include <xxhash.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

namespace civicsift {
namespace fs = std::filesystem;
namespace {

struct LoadFailure {
  PolicyError error;
};

[[noreturn]] void fail(const fs::path& file, std::string rule, std::string message) {
  throw LoadFailure{PolicyError{file, std::move(rule), std::move(message)}};
}

[[noreturn]] void fail(const fs::path& file, const RuleSpec& rule, std::string message) {
  throw LoadFailure{PolicyError{file, rule.id, std::move(message), rule.line}};
}

std::string read_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) fail(file, "", "cannot be read");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// What a policy's version hashes: its file's bytes, then each lexicon's, each after its
// length. Without the lengths, bytes moved from the end of one file to the start of
// the next (a lexicon's allow list moved to the following one) kept the version, and a
// changed policy passed for the one in force.
void add_to_version(std::string& hashed, std::string_view file_bytes) {
  const uint64_t length = file_bytes.size();
  hashed.append(reinterpret_cast<const char*>(&length), sizeof length);
  hashed.append(file_bytes);
}

std::string version_of(std::string_view hashed) {
  return fmt::format("{:012x}", XXH3_64bits(hashed.data(), hashed.size()) >> 16);
}

std::string at_line(const YAML::Node& n) { return fmt::format("line {}", n.Mark().line + 1); }

std::vector<std::string> string_list(const YAML::Node& n, const fs::path& file, const std::string& rule,
                                     std::string_view key) {
  std::vector<std::string> out;
  if (!n) return out;
  if (n.IsScalar()) return {n.as<std::string>()};
  if (!n.IsSequence()) fail(file, rule, fmt::format("{}: \"{}\" must be a list of strings", at_line(n), key));
  for (const auto& item : n) {
    if (!item.IsScalar())
      fail(file, rule, fmt::format("{}: \"{}\" must be a list of strings", at_line(item), key));
    out.push_back(item.as<std::string>());
  }
  return out;
}

std::string required_string(const YAML::Node& map, std::string_view key, const fs::path& file,
                            const std::string& rule) {
  const YAML::Node n = map[std::string(key)];
  if (!n || !n.IsScalar() || n.as<std::string>().empty())
    fail(file, rule, fmt::format("{}: \"{}\" is required", at_line(map), key));
  return n.as<std::string>();
}

// An optional text, `fallback` when the key is absent. An empty value (`name:`) is
// refused, not read as yaml-cpp's "null", and so is a list or a mapping.
std::string optional_text(const YAML::Node& map, std::string_view key, const fs::path& file, const std::string& rule,
                          std::string fallback = {}) {
  const YAML::Node n = map[std::string(key)];
  if (!n) return fallback;
  if (!n.IsScalar())
    fail(file, rule, fmt::format("{}: \"{}\" must be a text, not {}", at_line(n), key,
                                 n.IsNull() ? "empty" : "a list or a mapping"));
  return n.Scalar();
}

void check_keys(const YAML::Node& map, std::initializer_list<std::string_view> known, const fs::path& file,
                const std::string& rule) {
  // yaml-cpp keeps a repeated key and lookups find its first value: a second "rules:"
  // block would be dropped unseen, so a repeat is an error, as in comment JSON.
  std::vector<std::string> seen;
  for (const auto& kv : map) {
    if (!kv.first.IsScalar()) fail(file, rule, fmt::format("{}: a key must be plain text", at_line(kv.first)));
    auto key = kv.first.as<std::string>();
    if (std::find(known.begin(), known.end(), key) == known.end())
      fail(file, rule, fmt::format("{}: unknown key \"{}\"", at_line(kv.first), key));
    if (std::find(seen.begin(), seen.end(), key) != seen.end())
      fail(file, rule, fmt::format("{}: key \"{}\" is given twice", at_line(kv.first), key));
    seen.push_back(std::move(key));
  }
}

// A top-level section (`thresholds:`, `allow:`, ...): absent, or a mapping. Left
// empty it is refused, as an empty text is: it says nothing, likely by mistake.
YAML::Node section(const YAML::Node& root, const char* key, const fs::path& file) {
  for (const auto& kv : root) {
    if (kv.first.Scalar() != key) continue;
    if (!kv.second.IsMap())  // the key's line: an empty value has none of its own
      fail(file, "", fmt::format("{}: \"{}\" must be a mapping, not {}", at_line(kv.first), key,
                                 kv.second.IsNull() ? "empty" : kv.second.IsSequence() ? "a list" : "a text"));
    return kv.second;
  }
  return root[key];  // absent: an undefined node, false in a condition
}

Lexicon load_lexicon(const fs::path& policy_file, const std::string& name, std::string& content_for_hash) {
  // A name is a file name in lexicons/, never a path: no "../" out of the folder.
  const bool plain_name = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
  });
  if (!plain_name)
    fail(policy_file.parent_path() / "lexicons", "", fmt::format("lexicon name \"{}\": use lower-case letters, digits, - and _", name));
  const fs::path file = lexicon_file(policy_file, name);
  std::error_code ec;
  if (!fs::exists(file, ec)) fail(file, "", fmt::format("lexicon \"{}\" not found{}", name, ec ? " (" + ec.message() + ")" : ""));
  const std::string text = read_file(file);
  add_to_version(content_for_hash, text);
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    fail(file, "", fmt::format("invalid YAML: {}", e.what()));
  }
  if (!root.IsMap()) fail(file, "", "a lexicon must be a mapping with \"lexicon\" and \"terms\"");
  check_keys(root, {"lexicon", "description", "terms", "allow"}, file, "");
  Lexicon lex{required_string(root, "lexicon", file, ""), file, string_list(root["terms"], file, "", "terms"),
              string_list(root["allow"], file, "", "allow")};
  if (lex.name != name) fail(file, "", fmt::format("declares lexicon \"{}\", expected \"{}\"", lex.name, name));
  if (lex.terms.empty()) fail(file, "", "has no terms");
  return lex;
}

std::string digits_of(std::string_view s) {
  std::string d;
  for (char c : s)
    if (c >= '0' && c <= '9') d.push_back(c);
  if (d.size() == 11 && d[0] == '1') d.erase(0, 1);  // +1 country code
  return d;
}

RuleSpec load_rule(const YAML::Node& n, const fs::path& file, const std::set<std::string>& lexicon_names) {
  if (!n.IsMap()) fail(file, "", fmt::format("{}: each rule must be a mapping", at_line(n)));
  RuleSpec r;
  r.line = n.Mark().line + 1;
  r.id = required_string(n, "id", file, "");
  check_keys(n,
             {"id", "category", "clause", "action", "score", "direction", "routes", "terms", "lexicon_terms",
              "regex", "validate", "allow", "examples", "description", "duplicate_within", "during"},
             file, r.id);
  const auto category = required_string(n, "category", file, r.id);
  if (auto c = parse_category(category)) r.category = *c;
  else fail(file, r, fmt::format("unknown category \"{}\"", category));
  r.clause = required_string(n, "clause", file, r.id);
  const auto action = required_string(n, "action", file, r.id);
  if (auto a = parse_action(action)) r.action = *a;
  else fail(file, r, fmt::format("unknown action \"{}\" (allow, review, remove, escalate)", action));
  r.score = default_score(r.action);
  if (n["score"]) {
    try {
      r.score = n["score"].as<int>();
    } catch (const YAML::Exception&) {
      fail(file, r, "\"score\" must be an integer");
    }
  }
  if (n["direction"]) {
    const auto d = optional_text(n, "direction", file, r.id);
    if (d == "any") r.direction = DirectionScope::any;
    else if (d == "inbound") r.direction = DirectionScope::inbound;
    else if (d == "outbound") r.direction = DirectionScope::outbound;
    else fail(file, r, fmt::format("unknown direction \"{}\" (any, inbound, outbound)", d));
  }
  r.routes = string_list(n["routes"], file, r.id, "routes");
  if (std::find(r.routes.begin(), r.routes.end(), "") != r.routes.end()) fail(file, r, "a route must not be empty");
  r.terms = string_list(n["terms"], file, r.id, "terms");
  r.lexicons = string_list(n["lexicon_terms"], file, r.id, "lexicon_terms");
  for (const auto& lex : r.lexicons)
    if (!lexicon_names.count(lex))
      fail(file, r, fmt::format("uses lexicon \"{}\" that the policy does not list in \"lexicons\"", lex));
  r.regexes = string_list(n["regex"], file, r.id, "regex");
  if (n["validate"]) {
    const auto v = optional_text(n, "validate", file, r.id);
    if (auto val = parse_validator(v)) r.validator = *val;
    else fail(file, r, fmt::format("unknown validator \"{}\" (luhn, phone, domain, short_code, street_address)", v));
    if (r.regexes.empty() && r.terms.empty() && r.lexicons.empty())
      fail(file, r, "\"validate\" checks \"regex\" and term matches, and there are none");
  }
  r.allow = string_list(n["allow"], file, r.id, "allow");
  if (n["duplicate_within"]) {
    const auto d = parse_duration_ms(optional_text(n, "duplicate_within", file, r.id));
    if (!d || *d <= 0) fail(file, r, "\"duplicate_within\" must be a duration such as 30m, 24h or 7d");
    r.duplicate_within_ms = *d;
  }
  if (n["during"]) {
    if (optional_text(n, "during", file, r.id) != "election") fail(file, r, "\"during\" can only be \"election\"");
    r.during_election = true;
  }
  if (!r.has_patterns() && r.duplicate_within_ms == 0)
    fail(file, r, "has no patterns (terms, lexicon_terms, regex) and is not a duplicate_within rule");
  if (r.has_patterns() && r.duplicate_within_ms != 0)
    fail(file, r, "a duplicate_within rule takes no patterns");
  if (const auto ex = n["examples"]) {
    if (!ex.IsMap()) fail(file, r, "\"examples\" must have \"match\" and \"no_match\" lists");
    check_keys(ex, {"match", "no_match"}, file, r.id);
    r.examples_match = string_list(ex["match"], file, r.id, "examples.match");
    r.examples_no_match = string_list(ex["no_match"], file, r.id, "examples.no_match");
  }
  return r;
}

PolicySpec load(const fs::path& file) {
  std::string content = read_file(file);
  YAML::Node root;
  try {
    root = YAML::Load(content);
  } catch (const YAML::Exception& e) {
    fail(file, "", fmt::format("invalid YAML: {}", e.what()));
  }
  if (!root.IsMap()) fail(file, "", "a policy must be a mapping with \"tenant\" and \"rules\"");
  check_keys(root,
             {"tenant", "name", "source", "lexicons", "thresholds", "allow", "rules", "repeat_offenders", "election"},
             file, "");
  PolicySpec p;
  p.file = file;
  p.tenant = required_string(root, "tenant", file, "");
  p.name = optional_text(root, "name", file, "", p.tenant);
  p.source = optional_text(root, "source", file, "");

  std::string hashed;
  add_to_version(hashed, content);
  std::set<std::string> lexicon_names;
  for (const auto& name : string_list(root["lexicons"], file, "", "lexicons")) {
    p.lexicons.push_back(load_lexicon(file, name, hashed));
    lexicon_names.insert(name);
  }
  if (const auto t = section(root, "thresholds", file)) {
    check_keys(t, {"review", "remove", "escalate"}, file, "");
    // 0 is what a threshold left out means (not used): one given is at least 1.
    const auto threshold = [&](const char* key) {
      if (!t[key]) return 0;
      int value = 0;
      try {
        value = t[key].as<int>();
      } catch (const YAML::Exception&) {
        value = 0;
      }
      if (value < 1) fail(file, "", fmt::format("{}: thresholds.{} must be a whole number of at least 1", at_line(t[key]), key));
      return value;
    };
    p.thresholds.review = threshold("review");
    p.thresholds.remove = threshold("remove");
    p.thresholds.escalate = threshold("escalate");
  }
  if (const auto a = section(root, "allow", file)) {
    check_keys(a, {"phones", "domains"}, file, "");
    for (const auto& phone : string_list(a["phones"], file, "", "allow.phones")) {
      auto d = digits_of(phone);
      if (d.empty()) fail(file, "", fmt::format("allow.phones entry \"{}\" has no digits", phone));
      p.allow_phones.push_back(std::move(d));
    }
    for (auto domain : string_list(a["domains"], file, "", "allow.domains")) {
      std::transform(domain.begin(), domain.end(), domain.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      p.allow_domains.push_back(std::move(domain));
    }
  }
  if (const auto r = section(root, "repeat_offenders", file)) {
    check_keys(r, {"removals", "within", "route", "clause"}, file, "");
    try {
      p.repeat_offenders.removals = r["removals"] ? r["removals"].as<int>() : 0;
    } catch (const YAML::Exception&) {
      fail(file, "", "repeat_offenders.removals must be an integer");
    }
    const auto within = parse_duration_ms(optional_text(r, "within", file, ""));
    // Each author's removal times are kept, up to twice `removals`: bounded.
    if (p.repeat_offenders.removals < 1 || p.repeat_offenders.removals > 1000 || !within || *within <= 0)
      fail(file, "", "repeat_offenders needs \"removals\" (1 to 1000) and \"within\" (a duration such as 30d)");
    p.repeat_offenders.within_ms = *within;
    p.repeat_offenders.route = optional_text(r, "route", file, "", p.repeat_offenders.route);
    if (p.repeat_offenders.route.empty()) fail(file, "", "repeat_offenders \"route\" must not be empty");
    p.repeat_offenders.clause = optional_text(r, "clause", file, "");
  }
  if (const auto e = section(root, "election", file)) {
    check_keys(e, {"nominations_open", "nominations_close", "utc_offset"}, file, "");
    // A date is a whole day where the municipality is (`utc_offset`, UTC by default),
    // so a post at 9 pm on the closing day still falls inside; a date-time is exact.
    const auto local = parse_utc_offset_ms(optional_text(e, "utc_offset", file, "", "Z"));
    if (!local) fail(file, "", "election \"utc_offset\" must look like -04:00 (or Z)");
    const auto bound = [&](const char* key, bool closing) -> std::optional<int64_t> {
      const std::string value = optional_text(e, key, file, "");
      const auto ms = parse_timestamp_ms(value);
      if (!ms || value.size() != 10) return ms;
      return *ms - *local + (closing ? 86'400'000 - 1 : 0);
    };
    const auto open = bound("nominations_open", false), close = bound("nominations_close", true);
    if (!open || !close || *close < *open)
      fail(file, "",
           "election needs \"nominations_open\" and \"nominations_close\", dates (YYYY-MM-DD) or date-times "
           "(RFC 3339), in order");
    p.election = ElectionPeriod{*open, *close};
  }
  const auto rules = root["rules"];
  if (!rules || !rules.IsSequence() || rules.size() == 0) fail(file, "", "\"rules\" must be a non-empty list");
  std::set<std::string> ids;
  for (const auto& n : rules) {
    auto r = load_rule(n, file, lexicon_names);
    if (!ids.insert(r.id).second) fail(file, r, "duplicate rule id");
    p.rules.push_back(std::move(r));
  }
  if (p.rules.size() > UINT16_MAX) fail(file, "", "too many rules");
  for (const auto& r : p.rules)
    if (r.during_election && !p.election)
      fail(file, r, "applies \"during: election\" but the policy has no \"election\" dates");
  p.version = version_of(hashed);
  return p;
}

}  // namespace

std::variant<PolicySpec, PolicyError> load_policy(const fs::path& file) {
  try {
    return load(file);
  } catch (const LoadFailure& f) {
    return f.error;
  } catch (const YAML::Exception& e) {
    return PolicyError{file, "", fmt::format("invalid policy: {}", e.what())};
  } catch (const std::exception& e) {  // e.g. a file system error: a policy error too, never a crash
    return PolicyError{file, "", e.what()};
  }
}

fs::path lexicon_file(const fs::path& policy_file, const std::string& name) {
  return policy_file.parent_path() / "lexicons" / (name + ".yaml");
}

std::optional<std::string> current_version(const PolicySpec& spec) {
  try {
    std::string hashed;
    add_to_version(hashed, read_file(spec.file));
    for (const auto& lex : spec.lexicons) add_to_version(hashed, read_file(lex.file));
    return version_of(hashed);
  } catch (const LoadFailure&) {
    return std::nullopt;
  }
}

std::variant<std::vector<fs::path>, PolicyError> policy_files(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return PolicyError{dir, "", "is not a directory"};
  std::vector<fs::path> files;
  // An entry that cannot be examined (a symlink loop, a folder it cannot read) is no
  // tenant file, as the start-up's warning about unread files says; it does not throw.
  // Nor does a folder that fails while being read: increment(ec), not ++.
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code entry_ec;
    if (it->is_regular_file(entry_ec) && it->path().extension() == ".yaml") files.push_back(it->path());
  }
  if (ec) return PolicyError{dir, "", ec.message()};
  std::sort(files.begin(), files.end());
  if (files.empty()) return PolicyError{dir, "", "contains no policy files (*.yaml)"};
  return files;
}

std::variant<std::vector<PolicySpec>, PolicyError> load_policy_dir(const fs::path& dir) {
  auto listed = policy_files(dir);
  if (auto* e = std::get_if<PolicyError>(&listed)) return *e;
  const auto& files = std::get<std::vector<fs::path>>(listed);
  // Parsed side by side (YAML parsing is a third of start-up); the first problem in
  // folder order is reported, as a file-by-file load would.
  std::vector<std::optional<std::variant<PolicySpec, PolicyError>>> loaded(files.size());
  parallel_for(files.size(), [&](size_t i) { loaded[i] = load_policy(files[i]); });
  std::vector<PolicySpec> out;
  std::set<std::string> tenants;
  for (size_t i = 0; i < files.size(); ++i) {
    if (auto* e = std::get_if<PolicyError>(&*loaded[i])) return *e;
    auto& spec = std::get<PolicySpec>(*loaded[i]);
    if (!tenants.insert(spec.tenant).second)
      return PolicyError{files[i], "", fmt::format("tenant \"{}\" is defined twice", spec.tenant)};
    out.push_back(std::move(spec));
  }
  return out;
}

}  // namespace civicsift
