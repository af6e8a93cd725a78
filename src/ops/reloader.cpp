#include "ops/reloader.h"

#include <spdlog/spdlog.h>
#include <xxhash.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "ops/metrics.h"
#include "policy/loader.h"

namespace civicsift {
namespace fs = std::filesystem;

namespace {

// The tenant files (or lexicons) of `dir`; none when it cannot be read or holds none.
std::vector<fs::path> yaml_files(const fs::path& dir) {
  auto files = policy_files(dir);
  if (auto* found = std::get_if<std::vector<fs::path>>(&files)) return std::move(*found);
  return {};
}

}  // namespace

uint64_t policy_folder_digest(const fs::path& dir) {
  XXH3_state_t* state = XXH3_createState();
  XXH3_64bits_reset(state);
  for (const fs::path& folder : {dir, dir / "lexicons"}) {
    for (const auto& file : yaml_files(folder)) {
      const std::string name = file.string();
      XXH3_64bits_update(state, name.data(), name.size() + 1);
      std::ifstream in(file, std::ios::binary);
      std::stringstream content;
      content << in.rdbuf();
      const std::string bytes = content.str();
      XXH3_64bits_update(state, bytes.data(), bytes.size());
    }
  }
  const uint64_t digest = XXH3_64bits_digest(state);
  XXH3_freeState(state);
  return digest;
}

ReloadResult rebuild_policies(const fs::path& dir, const CompileOptions& options,
                              const std::shared_ptr<const PolicySet>& current) {
  ReloadResult result;
  std::map<std::string, std::shared_ptr<const CompiledPolicy>> next;  // by tenant
  auto current_for_file = [&](const fs::path& file) -> std::shared_ptr<const CompiledPolicy> {
    for (const auto& p : current->policies())
      if (p->spec().file.filename() == file.filename()) return p;
    return nullptr;
  };
  auto keep = [&](std::shared_ptr<const CompiledPolicy> p, std::string tenant, std::string error) {
    if (p) next[p->tenant()] = p;
    result.tenants.push_back(
        {p ? p->tenant() : std::move(tenant), false, false, p ? p->spec().version : "", std::move(error)});
  };

  const auto files = yaml_files(dir);
  if (files.empty()) {
    // A folder caught mid-update (or gone) must not empty a running service.
    for (const auto& p : current->policies())
      keep(p, p->tenant(), fmt::format("{}: contains no policy files (*.yaml)", dir.string()));
    result.policies = current;
    return result;
  }
  for (const auto& file : files) {
    // A file whose bytes, and its lexicons', are those its policy in force was made
    // from is neither parsed nor compiled: a reload costs what was edited.
    if (auto p = current_for_file(file); p && current_version(p->spec()) == p->spec().version) {
      if (next.count(p->tenant())) {
        keep(nullptr, p->tenant(), fmt::format("{}: tenant \"{}\" is defined twice", file.string(), p->tenant()));
        continue;
      }
      next[p->tenant()] = p;
      result.tenants.push_back({p->tenant(), true, false, p->spec().version, ""});
      continue;
    }
    auto loaded = load_policy(file);
    if (auto* e = std::get_if<PolicyError>(&loaded)) {
      keep(current_for_file(file), file.stem().string(), e->to_string());
      continue;
    }
    PolicySpec& spec = std::get<PolicySpec>(loaded);
    if (next.count(spec.tenant)) {
      keep(nullptr, spec.tenant, fmt::format("{}: tenant \"{}\" is defined twice", file.string(), spec.tenant));
      continue;
    }
    const CompiledPolicy* in_force = current->find(spec.tenant);
    if (in_force && in_force->spec().version == spec.version) {
      for (const auto& p : current->policies())
        if (p.get() == in_force) next[spec.tenant] = p;  // unchanged: no recompile
      result.tenants.push_back({spec.tenant, true, false, spec.version, ""});
      continue;
    }
    const std::string tenant = spec.tenant, version = spec.version;
    auto compiled = compile_policy(std::move(spec), options);
    if (auto* e = std::get_if<PolicyError>(&compiled)) {
      std::shared_ptr<const CompiledPolicy> old;
      for (const auto& p : current->policies())
        if (p.get() == in_force) old = p;
      // A file that renamed its tenant and fails: the policy its file held stays.
      keep(old ? old : current_for_file(file), tenant, e->to_string());
      continue;
    }
    next[tenant] = std::get<std::shared_ptr<const CompiledPolicy>>(std::move(compiled));
    result.tenants.push_back({tenant, true, true, version, ""});
  }

  std::vector<std::shared_ptr<const CompiledPolicy>> policies;
  for (auto& [tenant, p] : next) policies.push_back(p);
  result.changed = policies.size() != current->policies().size();
  for (const auto& p : policies) {
    const CompiledPolicy* before = current->find(p->tenant());
    if (!before || before != p.get()) result.changed = true;
  }
  // The tenants compiled again had databases of their own: all share one set again.
  if (result.changed) policies = with_shared_databases(policies, options);
  result.policies = result.changed ? std::make_shared<const PolicySet>(std::move(policies)) : current;
  return result;
}

PolicyReloader::PolicyReloader(fs::path dir, CompileOptions options, std::shared_ptr<const PolicySet> current,
                               Apply apply, Metrics* metrics, int watch_interval_ms, uint64_t loaded_digest)
    : dir_(std::move(dir)),
      options_(std::move(options)),
      current_(std::move(current)),
      apply_(std::move(apply)),
      metrics_(metrics),
      watch_interval_ms_(watch_interval_ms),
      digest_(loaded_digest),
      thread_([this] { loop(); }) {}

PolicyReloader::~PolicyReloader() {
  stopping_.store(true);
  thread_.join();
}

void PolicyReloader::loop() {
  using namespace std::chrono;
  auto next_look = steady_clock::now() + milliseconds(watch_interval_ms_);
  while (!stopping_.load()) {
    std::this_thread::sleep_for(milliseconds(50));
    bool wanted = requested_.exchange(false);
    try {  // e.g. the folder's file system failing: keep serving
      if (watch_interval_ms_ > 0 && steady_clock::now() >= next_look) {
        next_look = steady_clock::now() + milliseconds(watch_interval_ms_);
        const uint64_t now_digest = policy_folder_digest(dir_);
        if (now_digest != digest_) {
          digest_ = now_digest;
          spdlog::info("policy folder {} changed", dir_.string());
          wanted = true;
        }
      }
      if (wanted) reload();
    } catch (const std::exception& e) {
      spdlog::error("policy reload failed: {}; the policies in force stay", e.what());
    }
  }
}

void PolicyReloader::reload() {
  const auto started = std::chrono::steady_clock::now();
  ReloadResult r = rebuild_policies(dir_, options_, current_);
  for (const auto& t : r.tenants) {
    if (metrics_)
      metrics_->record_reload(t.tenant, !t.ok       ? Metrics::Reload::failure
                                        : t.updated ? Metrics::Reload::success
                                                    : Metrics::Reload::unchanged);
    // PolicyError names the file and rule; it never holds comment data.
    if (!t.ok)
      spdlog::error("policy reload failed for {}: {}; {}", t.tenant, t.error,
                    t.version.empty() ? "tenant not served" : "keeping version " + t.version);
  }
  if (r.changed) {
    for (const auto& p : r.policies->policies()) {
      const CompiledPolicy* before = current_->find(p->tenant());
      if (!before || before->spec().version != p->spec().version)
        spdlog::info("policy {} in force{}", p->label(), before ? " (was " + before->label() + ")" : "");
    }
    for (const auto& p : current_->policies())
      if (!r.policies->find(p->tenant())) spdlog::warn("policy {} removed: its file is gone", p->label());
    current_ = r.policies;
    apply_(current_);
    if (metrics_) metrics_->set_policies(*current_);
    if (!options_.cache_dir.empty()) prune_cache(options_.cache_dir, *current_);
  }
  reloads_++;
  spdlog::info("policy reload done in {:.2f} s ({})",
               std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(),
               r.changed ? "new policies in force" : "nothing changed");
}

}  // namespace civicsift
