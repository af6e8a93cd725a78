// policy: YAML -> PolicySpec.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "policy/policy.h"

namespace civicsift {

// Loads one tenant file; lexicons are read from `<file's dir>/lexicons/<name>.yaml`.
std::variant<PolicySpec, PolicyError> load_policy(const std::filesystem::path& file);

// The tenant files of `dir`: its `*.yaml` files (not its subfolders'), sorted by name.
std::variant<std::vector<std::filesystem::path>, PolicyError> policy_files(const std::filesystem::path& dir);

// Where load_policy() reads lexicon `name` of `policy_file`.
std::filesystem::path lexicon_file(const std::filesystem::path& policy_file, const std::string& name);

// The version load_policy() would give `spec.file` with the lexicons `spec` names, as
// their bytes stand now (nothing if one cannot be read): whether a policy loaded
// earlier still is what its files say, without parsing them.
std::optional<std::string> current_version(const PolicySpec& spec);

// Loads every `*.yaml` tenant file directly in `dir`, sorted by name. Stops at the
// first error; tenants must be unique.
std::variant<std::vector<PolicySpec>, PolicyError> load_policy_dir(const std::filesystem::path& dir);

}  // namespace civicsift
