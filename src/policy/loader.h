// policy: YAML -> PolicySpec.
#pragma once

#include <filesystem>
#include <variant>
#include <vector>

#include "policy/policy.h"

namespace civicsift {

// Loads one tenant file; lexicons are read from `<file's dir>/lexicons/<name>.yaml`.
std::variant<PolicySpec, PolicyError> load_policy(const std::filesystem::path& file);

// Loads every `*.yaml` tenant file directly in `dir`, sorted by name. Stops at the
// first error; tenants must be unique.
std::variant<std::vector<PolicySpec>, PolicyError> load_policy_dir(const std::filesystem::path& dir);

}  // namespace civicsift
