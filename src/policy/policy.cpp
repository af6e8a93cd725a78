#include "policy/policy.h"

#include <fmt/format.h>

namespace civicsift {
namespace {
constexpr std::array<std::string_view, kCategoryCount> kCategoryNames = {
    "profanity", "sexual", "hate", "harassment", "threat", "self_harm", "illegal", "security", "commercial",
    "spam", "pii", "confidential", "copyright", "political", "religious", "election", "defamation", "off_topic",
};
constexpr std::array<std::string_view, kActionCount> kActionNames = {"allow", "review", "remove", "escalate"};
}  // namespace

std::string_view to_string(Category c) { return kCategoryNames[static_cast<size_t>(c)]; }

std::optional<Category> parse_category(std::string_view s) {
  for (size_t i = 0; i < kCategoryNames.size(); ++i)
    if (kCategoryNames[i] == s) return static_cast<Category>(i);
  return std::nullopt;
}

static_assert(static_cast<size_t>(Action::escalate) + 1 == kActionCount);
std::string_view to_string(Action a) { return kActionNames[static_cast<size_t>(a)]; }

std::optional<Action> parse_action(std::string_view s) {
  for (size_t i = 0; i < kActionNames.size(); ++i)
    if (kActionNames[i] == s) return static_cast<Action>(i);
  return std::nullopt;
}

std::optional<Validator> parse_validator(std::string_view s) {
  if (s == "luhn") return Validator::luhn;
  if (s == "phone") return Validator::phone;
  if (s == "domain") return Validator::domain;
  if (s == "short_code") return Validator::short_code;
  if (s == "street_address") return Validator::street_address;
  return std::nullopt;
}

int default_score(Action a) {
  switch (a) {
    case Action::allow: return 0;
    case Action::review: return 2;
    case Action::remove: return 5;
    case Action::escalate: return 10;
  }
  return 0;
}

std::string PolicyError::to_string() const {
  if (rule.empty()) return fmt::format("{}: {}", file.string(), message);
  if (line > 0) return fmt::format("{}:{}: rule {}: {}", file.string(), line, rule, message);
  return fmt::format("{}: rule {}: {}", file.string(), rule, message);
}

}  // namespace civicsift
