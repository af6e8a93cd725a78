// civicsift scan: JSON lines in, one verdict or error record per line out, in input
// order, using every core while memory stays bounded by the batches in flight.
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <algorithm>
#include <deque>
#include <map>
#include <mutex>
#include <system_error>
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
// worker: the keys, not the comment; a line whose verdict they change is decoded
// again to be rendered (rare: duplicates and repeat offenders).
struct LineFacts {
  size_t out_begin = 0, out_end = 0;  // the worker's rendering in the batch output
  uint32_t line = 0;                  // index into the batch's lines
  StreamState::Key key;
  Verdict verdict;
};

// Batches are recycled: their buffers keep their capacity, so a long scan does not
// allocate (and fault in) megabytes per batch.
struct ScanBatch : LineBatch {
  std::vector<LineFacts> facts;  // lines that stateful rules may change
  size_t fact_count = 0;         // facts[0, fact_count) belong to this batch

  void reset() {  // `data` keeps its size too: LineReader::next reads into it
    lines.clear();
    output.clear();
    fact_count = 0;
  }
};

// Classifies a batch. With `state` (one thread), stateful rules apply in place; with
// `record_facts` (several threads), they are left to apply_state() in input order.
void process_batch(CommentProcessor& processor, ScanBatch& batch, size_t max_bytes, StreamState* state,
                   bool record_facts) {
  batch.output.clear();
  batch.output.reserve(batch.lines.size() * 160);
  batch.fact_count = 0;
  uint64_t line_no = batch.first_line;
  for (size_t i = 0; i < batch.lines.size(); ++i) {
    const auto& line = batch.lines[i];
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
    if (record_facts && classified) {
      const Comment& c = processor.comment();
      const Verdict& v = processor.verdict();
      const StreamState::Key key = StreamState::key(
          {c.tenant, c.author, c.thread, static_cast<uint32_t>(c.text.size()), c.ts_ms, c.direction}, v);
      if (key.keeps_state) {
        if (batch.fact_count == batch.facts.size()) batch.facts.emplace_back();
        LineFacts& f = batch.facts[batch.fact_count++];
        f.out_begin = begin;
        f.out_end = batch.output.size();
        f.line = static_cast<uint32_t>(i);
        f.key = key;
        f.verdict = v;  // assigned into a recycled one: its vectors keep their capacity
      }
    }
    batch.output.push_back('\n');
    ++line_no;
  }
}

// The ordered stage of a parallel scan: stateful rules in input order; lines whose
// verdict they change are rendered again.
void apply_state(ScanBatch& batch, StreamState& state, Decoder& decoder, const VerdictOptions& verdict_options,
                 std::string& out) {
  out.clear();
  size_t copied = 0;
  for (size_t i = 0; i < batch.fact_count; ++i) {
    LineFacts& f = batch.facts[i];
    if (!state.apply(f.key, f.verdict)) continue;
    const auto& line = batch.lines[f.line];
    auto decoded = decoder.decode(std::string_view(batch.data.data() + line.offset, line.length));
    out.append(batch.output, copied, f.out_begin - copied);
    write_verdict(out, std::get<Comment>(decoded), f.verdict, verdict_options);  // it decoded before
    copied = f.out_end;
  }
  if (copied == 0) return;
  out.append(batch.output, copied);
  batch.output.swap(out);
}

// A batch's output goes to stdout in one write(2): it is already a large buffer, and
// stdio would copy it into its own first.
bool write_out(const std::string& s) {
  size_t done = 0;
  while (done < s.size()) {
    const ssize_t n = ::write(STDOUT_FILENO, s.data() + done, s.size() - done);
    if (n > 0) done += static_cast<size_t>(n);
    else if (n < 0 && errno == EINTR) continue;
    else {
      spdlog::error("cannot write verdicts: {}", n < 0 ? std::strerror(errno) : "nothing was written");
      return false;
    }
  }
  return true;
}

// Reads every input in order into numbered batches; `take` gives an empty batch
// (a recycled one when it can), `emit` takes each filled one. `cancel`: see LineReader;
// false once it stopped the reading.
template <typename Take, typename Emit>
bool read_batches(std::vector<Input>& inputs, size_t max_bytes, const std::atomic<bool>* cancel, Take&& take,
                  Emit&& emit) {
  uint64_t sequence = 0, next_line = 1;
  for (auto& input : inputs) {
    if (cancel && cancel->load()) return false;
    LineReader reader(input.fd, max_bytes, cancel);
    uint64_t lines_read = 0;
    while (true) {
      std::unique_ptr<ScanBatch> batch = take();
      batch->reset();
      batch->sequence = sequence;
      batch->first_line = next_line;
      if (!reader.next(*batch, kBatchLines, kBatchBytes)) break;
      next_line += batch->lines.size();
      lines_read += batch->lines.size();
      ++sequence;
      if (!emit(std::move(batch))) return false;
    }
    if (reader.cancelled()) return false;
    if (!reader.error().empty()) {
      spdlog::error("cannot read {} after its line {}: {}; nothing after that line was scanned", input.name,
                    lines_read, reader.error());
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
  std::unique_ptr<ScanBatch> spare = std::make_unique<ScanBatch>();
  const bool read_ok = read_batches(
      inputs, options.max_bytes, nullptr, [&] { return spare ? std::move(spare) : std::make_unique<ScanBatch>(); },
      [&](std::unique_ptr<ScanBatch> batch) {
        process_batch(processor, *batch, options.max_bytes, &state, false);
        output_ok = write_out(batch->output);
        spare = std::move(batch);
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
  std::vector<std::unique_ptr<ScanBatch>> spare;  // written batches, for the reader to refill
  const bool stateful = std::any_of(policies->policies().begin(), policies->policies().end(),
                                    [](const auto& p) { return p->keeps_state(); });
  StreamState state;
  const size_t max_in_flight = 2 * threads + 2;  // bounds memory to a few MiB per thread
  size_t in_flight = 0;
  bool reading_finished = false, read_ok = true, stop = false;
  std::atomic<bool> cancel_reading{false};  // `stop` for a reader waiting on a quiet pipe
  uint64_t batches_total = 0;

  std::vector<std::thread> workers;
  // Named threads, as the service's: `top -H` and profiles tell the stages apart.
  const auto work = [&](unsigned t) {
    pthread_setname_np(pthread_self(), fmt::format("cs-scan-{}", t).c_str());
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
  };
  const auto read = [&] {
    pthread_setname_np(pthread_self(), "cs-read");
    auto take = [&] {
      std::lock_guard lock(mu);
      if (spare.empty()) return std::make_unique<ScanBatch>();
      auto batch = std::move(spare.back());
      spare.pop_back();
      return batch;
    };
    const bool ok = read_batches(inputs, options.max_bytes, &cancel_reading, take, [&](std::unique_ptr<ScanBatch> batch) {
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
  };
  std::thread reader;
  const auto stop_all = [&] {
    {
      std::lock_guard lock(mu);
      stop = true;
      changed.notify_all();
    }
    cancel_reading.store(true);  // nothing more is needed: a reader on a quiet pipe stops too
    if (reader.joinable()) reader.join();
    for (auto& w : workers) w.join();
  };
  try {
    for (unsigned t = 0; t < threads; ++t) workers.emplace_back(work, t);
    reader = std::thread(read);
  } catch (const std::system_error& e) {  // out of threads (a ulimit): said, not a crash
    stop_all();
    spdlog::error("cannot start {} scan threads: {}", threads + 1, e.what());
    return 1;
  }

  bool output_ok = true;
  Decoder decoder(decoder_options);  // renders again the lines stateful rules change
  std::string rendered;
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
    if (stateful) apply_state(*batch, state, decoder, VerdictOptions{options.redacted_text}, rendered);
    if (!write_out(batch->output)) {
      output_ok = false;
      std::lock_guard lock(mu);
      stop = true;
      changed.notify_all();
      break;
    }
    std::lock_guard lock(mu);
    spare.push_back(std::move(batch));
  }
  stop_all();
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
  DecoderOptions decoder_options;
  decoder_options.max_bytes = options.max_bytes;
  decoder_options.default_tenant = options.default_tenant;
  const unsigned threads = options.threads ? options.threads : std::max(1u, std::thread::hardware_concurrency());
  const int rc = threads == 1 ? scan_single_thread(policies, options, inputs, decoder_options)
                              : scan_parallel(policies, options, inputs, decoder_options, threads);
  close_all();
  return rc;
}

}  // namespace civicsift
