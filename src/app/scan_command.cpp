// civicsift scan: JSON lines in, one verdict or error record per line out, in input
// order, using every core while memory stays bounded by the batches in flight.
#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "app/commands.h"
#include "app/line_reader.h"
#include "classify/processor.h"
#include "classify/verdict_writer.h"

namespace civicsift {
namespace {

constexpr size_t kBatchLines = 4096;
constexpr size_t kBatchBytes = 1 << 20;

struct Input {
  std::string name;
  int fd;
};

// What the ordered stage needs to apply stateful rules to a line classified by a
// worker, and to render its verdict again if they change it.
struct LineFacts {
  size_t out_begin = 0, out_end = 0;  // the worker's rendering in the batch output
  bool classified = false;
  std::string id, tenant, author, thread;
  uint32_t text_size = 0;
  int64_t ts_ms = 0;
  Verdict verdict;
  std::string text;  // only with --redacted-text, to render the redaction again
};

struct ScanBatch : LineBatch {
  std::vector<LineFacts> facts;  // filled only when a policy keeps state
};

// Classifies a batch. With `state` (one thread), stateful rules apply in place; with
// `record_facts` (several threads), they are left to apply_state() in input order.
void process_batch(CommentProcessor& processor, ScanBatch& batch, size_t max_bytes, StreamState* state,
                   bool record_facts) {
  batch.output.clear();
  batch.output.reserve(batch.lines.size() * 160);
  batch.facts.clear();
  uint64_t line_no = batch.first_line;
  for (const auto& line : batch.lines) {
    const size_t begin = batch.output.size();
    bool classified = false;
    if (line.oversize) {
      write_error(batch.output,
                  DecodeError{DecodeErrorCode::line_too_long,
                              fmt::format("line is {} bytes, over the limit of {}", line.oversize, max_bytes), {}},
                  line_no);
    } else {
      classified = processor
                       .process(std::string_view(batch.data.data() + line.offset, line.length), line_no,
                                batch.output, state)
                       .ok;
    }
    if (record_facts) {
      LineFacts& f = batch.facts.emplace_back();
      f.out_begin = begin;
      f.out_end = batch.output.size();
      f.classified = classified && processor.verdict().policy->keeps_state();
      if (f.classified) {
        const Comment& c = processor.comment();
        f.id = c.id, f.tenant = c.tenant, f.author = c.author, f.thread = c.thread;
        f.text_size = static_cast<uint32_t>(c.text.size());
        if (processor.verdict_options().redacted_text) f.text = c.text;
        f.ts_ms = c.ts_ms;
        f.verdict = processor.verdict();
      }
    }
    batch.output.push_back('\n');
    ++line_no;
  }
}

// The ordered stage of a parallel scan: stateful rules in input order; lines whose
// verdict they change are rendered again.
void apply_state(ScanBatch& batch, StreamState& state, const VerdictOptions& verdict_options) {
  std::string out;
  out.reserve(batch.output.size());
  size_t copied = 0;
  for (auto& f : batch.facts) {
    if (!f.classified ||
        !state.apply({f.tenant, f.author, f.thread, f.text_size, f.ts_ms}, f.verdict))
      continue;
    out.append(batch.output, copied, f.out_begin - copied);
    Comment c;
    c.id = f.id;
    c.tenant = f.tenant;
    c.text = f.text;
    write_verdict(out, c, f.verdict, verdict_options);
    copied = f.out_end;
  }
  if (copied == 0) return;
  out.append(batch.output, copied);
  batch.output.swap(out);
}

bool write_out(const std::string& s) {
  return std::fwrite(s.data(), 1, s.size(), stdout) == s.size();
}

// Reads every input in order into numbered batches; `emit` takes each one.
template <typename Emit>
bool read_batches(std::vector<Input>& inputs, size_t max_bytes, Emit&& emit) {
  uint64_t sequence = 0, next_line = 1;
  for (auto& input : inputs) {
    LineReader reader(input.fd, max_bytes);
    while (true) {
      auto batch = std::make_unique<ScanBatch>();
      batch->sequence = sequence;
      batch->first_line = next_line;
      if (!reader.next(*batch, kBatchLines, kBatchBytes)) break;
      next_line += batch->lines.size();
      ++sequence;
      if (!emit(std::move(batch))) return false;
    }
    if (!reader.error().empty()) {
      spdlog::error("cannot read {}: {}", input.name, reader.error());
      return false;
    }
  }
  return true;
}

int scan_single_thread(const std::shared_ptr<const PolicySet>& policies, const ScanOptions& options,
                       std::vector<Input>& inputs, DecoderOptions decoder_options) {
  CommentProcessor processor(policies, decoder_options, VerdictOptions{options.redacted_text});
  StreamState state;
  bool output_ok = true;
  const bool read_ok = read_batches(inputs, options.max_bytes, [&](std::unique_ptr<ScanBatch> batch) {
    process_batch(processor, *batch, options.max_bytes, &state, false);
    output_ok = write_out(batch->output);
    return output_ok;
  });
  return read_ok && output_ok ? 0 : 1;
}

int scan_parallel(const std::shared_ptr<const PolicySet>& policies, const ScanOptions& options,
                  std::vector<Input>& inputs, DecoderOptions decoder_options, unsigned threads) {
  std::mutex mu;
  std::condition_variable changed;
  std::deque<std::unique_ptr<ScanBatch>> todo;
  std::map<uint64_t, std::unique_ptr<ScanBatch>> done;
  const bool stateful = std::any_of(policies->policies().begin(), policies->policies().end(),
                                    [](const auto& p) { return p->keeps_state(); });
  StreamState state;
  const size_t max_in_flight = 2 * threads + 2;  // bounds memory to a few MiB per thread
  size_t in_flight = 0;
  bool reading_finished = false, read_ok = true, stop = false;
  uint64_t batches_total = 0;

  std::vector<std::thread> workers;
  for (unsigned t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      CommentProcessor processor(policies, decoder_options, VerdictOptions{options.redacted_text});
      std::unique_lock lock(mu);
      while (true) {
        changed.wait(lock, [&] { return stop || !todo.empty() || reading_finished; });
        if (todo.empty()) {
          if (stop || reading_finished) return;
          continue;
        }
        auto batch = std::move(todo.front());
        todo.pop_front();
        lock.unlock();
        process_batch(processor, *batch, options.max_bytes, nullptr, stateful);
        lock.lock();
        done.emplace(batch->sequence, std::move(batch));
        changed.notify_all();
      }
    });
  }
  std::thread reader([&] {
    const bool ok = read_batches(inputs, options.max_bytes, [&](std::unique_ptr<ScanBatch> batch) {
      std::unique_lock lock(mu);
      changed.wait(lock, [&] { return stop || in_flight < max_in_flight; });
      if (stop) return false;
      ++in_flight;
      ++batches_total;
      todo.push_back(std::move(batch));
      changed.notify_all();
      return true;
    });
    std::lock_guard lock(mu);
    read_ok = ok;
    reading_finished = true;
    changed.notify_all();
  });

  bool output_ok = true;
  for (uint64_t next = 0;; ++next) {
    std::unique_ptr<ScanBatch> batch;
    {
      std::unique_lock lock(mu);
      changed.wait(lock, [&] { return done.count(next) || (reading_finished && next >= batches_total); });
      if (!done.count(next)) break;
      batch = std::move(done[next]);
      done.erase(next);
      --in_flight;
      changed.notify_all();
    }
    if (stateful) apply_state(*batch, state, VerdictOptions{options.redacted_text});
    if (!write_out(batch->output)) {
      output_ok = false;
      std::lock_guard lock(mu);
      stop = true;
      changed.notify_all();
      break;
    }
  }
  reader.join();
  {
    std::lock_guard lock(mu);
    stop = true;
    changed.notify_all();
  }
  for (auto& w : workers) w.join();
  return read_ok && output_ok ? 0 : 1;
}

}  // namespace

int run_scan(const ScanOptions& options) {
  std::vector<Input> inputs;
  auto close_all = [&] {
    for (auto& in : inputs)
      if (in.fd != STDIN_FILENO) ::close(in.fd);
  };
  // Open every file first, so an unreadable one fails before any output.
  for (const auto& f : options.files) {
    if (f == "-") {
      inputs.push_back({"stdin", STDIN_FILENO});
      continue;
    }
    const int fd = ::open(f.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      spdlog::error("cannot open {}: {}", f, std::strerror(errno));
      close_all();
      return 2;
    }
    inputs.push_back({f, fd});
  }
  if (inputs.empty()) inputs.push_back({"stdin", STDIN_FILENO});

  auto policies = load_policies_or_report(options.policy);
  if (!policies) {
    close_all();
    return 2;
  }
  if (!options.default_tenant.empty() && !policies->find(options.default_tenant)) {
    spdlog::error("--tenant {}: no policy for this tenant in {}", options.default_tenant,
                  options.policy.patterns.string());
    close_all();
    return 2;
  }
  static char out_buffer[1 << 20];
  std::setvbuf(stdout, out_buffer, _IOFBF, sizeof out_buffer);

  DecoderOptions decoder_options;
  decoder_options.max_bytes = options.max_bytes;
  decoder_options.default_tenant = options.default_tenant;
  const unsigned threads = options.threads ? options.threads : std::max(1u, std::thread::hardware_concurrency());
  const int rc = threads == 1 ? scan_single_thread(policies, options, inputs, decoder_options)
                              : scan_parallel(policies, options, inputs, decoder_options, threads);
  close_all();
  if (std::fflush(stdout) != 0 && rc == 0) return 1;
  return rc;
}

}  // namespace civicsift
