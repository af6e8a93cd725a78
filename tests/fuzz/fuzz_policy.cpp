// libFuzzer target: any bytes as a tenant policy file (beside the test lexicons) ->
// load -> compile. A policy is either compiled or rejected with an error naming the
// file; nothing else may happen.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "fuzz_common.h"
#include "policy/compiler.h"
#include "policy/loader.h"

using namespace civicsift;
namespace fs = std::filesystem;

namespace {
// The policy's folder for this process, removed when the fuzzer exits normally so runs
// do not pile up folders in /tmp (a crash, which ends the process at once, leaves it).
struct PolicyDir {
  fs::path path = fs::temp_directory_path() / ("civicsift-fuzz-policy-" + std::to_string(getpid()));
  PolicyDir() {
    fs::create_directories(path);
    fs::copy(fuzz::test_policy_dir() / "lexicons", path / "lexicons",
             fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  }
  ~PolicyDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const PolicyDir policy_dir;
  const fs::path& dir = policy_dir.path;
  const fs::path file = dir / "fuzzed.yaml";
  std::ofstream(file, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data),
                                                                static_cast<std::streamsize>(size));
  auto loaded = load_policy(file);
  if (auto* e = std::get_if<PolicyError>(&loaded)) {
    // An error names the file it is about: the policy, or a lexicon beside it.
    if (e->message.empty() || (e->file != file && e->file.parent_path() != dir / "lexicons" && e->file != dir / "lexicons"))
      std::abort();
    return 0;
  }
  auto compiled = compile_policy(std::get<PolicySpec>(std::move(loaded)), CompileOptions{});
  if (auto* e = std::get_if<PolicyError>(&compiled); e && e->message.empty()) std::abort();
  return 0;
}
