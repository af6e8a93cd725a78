// Helpers shared by the tests: temporary policy folders and one-call classification.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "classify/classifier.h"
#include "policy/compiler.h"

namespace civicsift::testing {

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() / ("civicsift-test-" + std::to_string(getpid()) + "-" +
                                                      std::to_string(rd()));
    std::filesystem::create_directories(path_ / "lexicons");
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path write(const std::string& name, const std::string& content) const {
    const auto p = path_ / name;
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }

 private:
  std::filesystem::path path_;
};

inline std::shared_ptr<const CompiledPolicy> compile_or_fail(const std::filesystem::path& file,
                                                            const CompileOptions& options = {});

// Classifies `text` and returns the ids of the rules that fired.
inline std::vector<std::string> fired(const CompiledPolicy& policy, std::string_view text,
                                      Direction direction = Direction::inbound, Verdict* verdict_out = nullptr) {
  static thread_local ScanContext ctx;
  Verdict v;
  Comment c;
  c.id = "t";
  c.tenant = policy.tenant();
  c.text = text;
  c.direction = direction;
  classify(policy, c, ctx, v);
  std::vector<std::string> ids;
  for (const auto& m : v.matches) ids.push_back(policy.rule(m.rule).id);
  if (verdict_out) *verdict_out = v;
  return ids;
}

}  // namespace civicsift::testing

#include "policy/loader.h"

inline std::shared_ptr<const civicsift::CompiledPolicy> civicsift::testing::compile_or_fail(
    const std::filesystem::path& file, const CompileOptions& options) {
  auto spec = load_policy(file);
  if (auto* e = std::get_if<PolicyError>(&spec)) {
    ADD_FAILURE() << e->to_string();
    return nullptr;
  }
  auto compiled = compile_policy(std::get<PolicySpec>(std::move(spec)), options);
  if (auto* e = std::get_if<PolicyError>(&compiled)) {
    ADD_FAILURE() << e->to_string();
    return nullptr;
  }
  return std::get<std::shared_ptr<const CompiledPolicy>>(std::move(compiled));
}
