// policy: rules as data. A tenant's YAML policy (plus the lexicons it names) is
// loaded into a PolicySpec; the compiler turns it into one Hyperscan database.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace civicsift {

enum class Category : uint8_t {
  profanity, sexual, hate, harassment, threat, self_harm, illegal, security, commercial,
  spam, pii, confidential, copyright, political, religious, election, defamation, off_topic,
};
inline constexpr size_t kCategoryCount = 18;
std::string_view to_string(Category c);
std::optional<Category> parse_category(std::string_view s);

// Ordered by severity: a verdict takes the most severe action any rule asks for.
enum class Action : uint8_t { allow, review, remove, escalate };
inline constexpr size_t kActionCount = 4;  // arrays indexed by Action are this long
std::string_view to_string(Action a);
std::optional<Action> parse_action(std::string_view s);

enum class DirectionScope : uint8_t { any, inbound, outbound };

// Checks a regex match must pass before it counts (run on the matched bytes only).
enum class Validator : uint8_t { none, luhn, phone, domain, short_code, street_address };
std::optional<Validator> parse_validator(std::string_view s);

struct RuleSpec {
  std::string id;
  Category category{};
  std::string clause;
  Action action = Action::remove;
  int score = 0;
  DirectionScope direction = DirectionScope::any;
  std::vector<std::string> routes;
  std::vector<std::string> terms;     // matched on the skeleton, whole words
  std::vector<std::string> lexicons;  // whose terms this rule uses
  std::vector<std::string> regexes;   // matched on the raw text
  Validator validator = Validator::none;
  std::vector<std::string> allow;     // phrases that cancel a match they cover
  std::vector<std::string> examples_match;
  std::vector<std::string> examples_no_match;
  // Fires when the same author posts the same (normalised) text in the same thread
  // again within this many milliseconds; 0: not a duplicate rule.
  int64_t duplicate_within_ms = 0;
  bool during_election = false;  // applies only within the tenant's nomination period
  int line = 0;  // in the policy file, for error messages

  bool has_patterns() const { return !terms.empty() || !lexicons.empty() || !regexes.empty(); }
};

// N removals of one author within a window add a route (the block/ban clauses).
struct RepeatOffenders {
  int removals = 0;  // 0: off
  int64_t within_ms = 0;
  std::string route = "ban_review";
  std::string clause;
};

// The municipal election nomination period, [open, close], as Unix milliseconds (UTC).
struct ElectionPeriod {
  int64_t open_ms = 0;
  int64_t close_ms = 0;  // end of the closing day
  bool contains(int64_t ts_ms) const { return ts_ms >= open_ms && ts_ms <= close_ms; }
};

struct Lexicon {
  std::string name;
  std::filesystem::path file;
  std::vector<std::string> terms;
  std::vector<std::string> allow;
};

struct Thresholds {
  int review = 0;  // 0 = not used
  int remove = 0;
  int escalate = 0;
};

struct PolicySpec {
  std::string tenant;
  std::string name;
  std::string source;
  std::filesystem::path file;
  std::vector<Lexicon> lexicons;  // those the policy names
  Thresholds thresholds;
  std::vector<std::string> allow_phones;   // digits only, e.g. "5192556100", "311"
  std::vector<std::string> allow_domains;  // lower case
  std::vector<RuleSpec> rules;
  RepeatOffenders repeat_offenders;
  std::optional<ElectionPeriod> election;  // none: `during: election` rules are refused
  std::string version;  // hash of the policy file and its lexicons' contents
};

// An error that names where it is: file, rule id (when it concerns one) and reason.
struct PolicyError {
  std::filesystem::path file;
  std::string rule;
  std::string message;
  int line = 0;  // the rule's line, when known
  std::string to_string() const;
};

int default_score(Action a);

}  // namespace civicsift
