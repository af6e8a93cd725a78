#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "app/commands.h"

namespace civicsift {
namespace fs = std::filesystem;

std::shared_ptr<const PolicySet> load_policies_or_report(const PolicyOptions& options) {
  auto loaded = load_policy_set(options.patterns, CompileOptions{options.cache_dir});
  if (auto* e = std::get_if<PolicyError>(&loaded)) {
    spdlog::error("policy error: {}", e->to_string());
    return nullptr;
  }
  auto set = std::get<std::shared_ptr<const PolicySet>>(std::move(loaded));
  // A policy saved under another extension, or behind a link that leads nowhere, is
  // not read: every comment of its tenant would come back "unknown tenant", with
  // nothing at start-up to say why.
  std::error_code ec;
  for (fs::directory_iterator it(options.patterns, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::directory_entry& entry = *it;
    std::string extension = entry.path().extension().string();
    std::transform(extension.begin(), extension.end(), extension.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (extension != ".yml" && extension != ".yaml") continue;
    std::error_code entry_ec;
    const bool regular = entry.is_regular_file(entry_ec);
    if (entry.path().extension() != ".yaml") {
      if (regular) spdlog::warn("{} is not read: policy files end in .yaml", entry.path().string());
    } else if (!regular) {
      spdlog::warn("{} is not read: {}", entry.path().string(), entry_ec ? entry_ec.message() : "not a regular file");
    }
  }
  for (const auto& p : set->policies())
    spdlog::debug("loaded {} ({} rules, {} patterns, {} KiB{}, {:.3f} s{})", p->label(), p->spec().rules.size(),
                  p->pattern_count(), p->database_bytes() / 1024, p->shared() ? " shared" : "", p->compile_seconds(),
                  p->source() == PolicySource::snapshot           ? ", from its snapshot"
                  : p->source() == PolicySource::cached_databases ? ", databases from the cache"
                                                                  : "");
  if (const SharedDatabases* shared = set->policies().empty() ? nullptr : set->policies().front()->shared()) {
    const auto sharing = std::count_if(set->policies().begin(), set->policies().end(),
                                       [&](const auto& p) { return p->shared() == shared; });
    spdlog::debug("{} tenants share their databases ({} KiB{})", sharing, shared->dbs.bytes() / 1024,
                  shared->source == PolicySource::cached_databases ? ", from the cache" : "");
  }
  return set;
}

fs::path default_patterns_dir(const char* argv0) {
  if (const char* env = std::getenv("CIVICSIFT_PATTERNS"); env && *env) return env;
  if (fs::is_directory("patterns")) return "patterns";
  std::error_code ec;
  const fs::path exe = fs::canonical("/proc/self/exe", ec);
  const fs::path base = ec ? fs::path(argv0).parent_path() : exe.parent_path();
  for (const fs::path& candidate : {base / "patterns", base.parent_path() / "patterns",
                                    base.parent_path() / "share" / "civicsift" / "patterns"})
    if (fs::is_directory(candidate, ec)) return candidate;
  return "patterns";
}

}  // namespace civicsift
