// Start-up work that splits by tenant (parse each policy file, compile or load each
// database) runs side by side: it is most of a short `civicsift scan`.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <thread>
#include <vector>

namespace civicsift {

// Calls work(i) for every i in [0, n), on up to one thread per core (the calling thread
// among them), and returns when all are done. `work` must not throw.
template <class Work>
void parallel_for(size_t n, Work&& work) {
  std::atomic<size_t> next{0};
  auto run = [&] {
    for (size_t i; (i = next++) < n;) work(i);
  };
  const size_t threads = std::min<size_t>(n, std::max(1u, std::thread::hardware_concurrency()));
  std::vector<std::thread> helpers;
  for (size_t t = 1; t < threads; ++t) helpers.emplace_back(run);
  run();
  for (auto& h : helpers) h.join();
}

}  // namespace civicsift
