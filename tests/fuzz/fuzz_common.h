// Shared by the fuzz targets: the test policy they classify against.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <memory>

#include "policy/compiler.h"

namespace civicsift::fuzz {

inline std::filesystem::path test_policy_dir() { return CIVICSIFT_SOURCE_DIR "/tests/data/policy"; }

inline std::shared_ptr<const PolicySet> test_policies() {
  auto r = load_policy_set(test_policy_dir(), {});
  if (!std::holds_alternative<std::shared_ptr<const PolicySet>>(r)) std::abort();
  return std::get<std::shared_ptr<const PolicySet>>(r);
}

}  // namespace civicsift::fuzz
