// ops: hot policy reload. The patterns folder is recompiled away from the serving
// path, tenant by tenant; a tenant whose policy fails keeps the one in force, and the
// new set is handed over whole (Service::set_policies swaps it atomically).
#pragma once

#include <atomic>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "policy/compiler.h"

namespace civicsift {

class Metrics;

struct TenantReload {
  std::string tenant;   // the file's stem when the file cannot be read at all
  bool ok = false;
  bool updated = false;  // ok, and this version was compiled: it is new in force
  std::string version;   // in force after the reload
  std::string error;    // file, rule and reason when !ok
};

struct ReloadResult {
  std::shared_ptr<const PolicySet> policies;  // the set to serve (the current one if nothing loaded)
  std::vector<TenantReload> tenants;
  bool changed = false;  // some tenant's version differs, or tenants came or went
};

// Builds the next policy set from `dir`. Unchanged tenants keep their compiled
// database; a tenant file that fails to load or compile keeps the current policy of
// that tenant. Tenants whose files were removed are dropped.
ReloadResult rebuild_policies(const std::filesystem::path& dir, const CompileOptions& options,
                              const std::shared_ptr<const PolicySet>& current);

// A digest of the policy files' names and contents (tenant files and lexicons).
uint64_t policy_folder_digest(const std::filesystem::path& dir);

// Runs reloads on its own thread: when asked (SIGHUP) and, with a watch interval,
// when the folder's digest changes from `loaded_digest`, the folder's digest taken
// before `current` was loaded: an edit made while it compiled (seconds, cold) is seen
// at the first look.
class PolicyReloader {
 public:
  using Apply = std::function<void(std::shared_ptr<const PolicySet>)>;
  PolicyReloader(std::filesystem::path dir, CompileOptions options, std::shared_ptr<const PolicySet> current,
                 Apply apply, Metrics* metrics, int watch_interval_ms, uint64_t loaded_digest);
  ~PolicyReloader();
  PolicyReloader(const PolicyReloader&) = delete;
  PolicyReloader& operator=(const PolicyReloader&) = delete;

  // Async-signal-safe: only sets a flag the reload thread polls.
  void request() { requested_.store(true); }
  uint64_t reloads() const { return reloads_.load(); }

 private:
  void loop();
  void reload();

  std::filesystem::path dir_;
  CompileOptions options_;
  std::shared_ptr<const PolicySet> current_;
  Apply apply_;
  Metrics* metrics_;
  int watch_interval_ms_;
  uint64_t digest_;  // of the folder the policies in force came from (reload thread)
  std::atomic<bool> requested_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> reloads_{0};
  std::thread thread_;
};

}  // namespace civicsift
