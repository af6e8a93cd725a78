// policy: a compiled policy's spec and pattern tables as bytes, kept in the compile
// cache beside its databases, so that a start-up whose policy files have not changed
// skips YAML parsing and table building (two thirds of a start-up from the cache).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "policy/compiler.h"

namespace civicsift {

// What a snapshot holds: all of a CompiledPolicy but its databases, which it names.
struct PolicySnapshot {
  PolicySpec spec;  // `file` and the lexicons' `file` are not kept: they are where it is loaded from
  PatternIndex index;
  uint64_t database_key = 0;  // CompiledPolicy::cache_key()
  std::array<bool, kDatabaseParts> has_part{};  // by DatabasePart
};

std::string encode_snapshot(const CompiledPolicy& policy);

// Nothing for bytes that are not a whole snapshot this build wrote (truncated,
// corrupted, another format): the caller compiles the policy instead.
std::optional<PolicySnapshot> decode_snapshot(std::string_view bytes);

}  // namespace civicsift
