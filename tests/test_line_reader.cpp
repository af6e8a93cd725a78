#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <future>
#include <random>
#include <string>

#include "app/line_reader.h"

using civicsift::LineBatch;
using civicsift::LineReader;

namespace {
// Feeds `input` through a pipe and returns the lines (oversize ones as "<N bytes>").
// With `recycle`, one batch is reused throughout, as `civicsift scan` recycles them.
std::vector<std::string> read_all(const std::string& input, size_t max_line, size_t batch_lines = 3,
                                  bool recycle = false, size_t max_write = 7) {
  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  std::thread writer([&] {
    size_t off = 0;
    while (off < input.size()) {
      const auto n = write(fds[1], input.data() + off, std::min<size_t>(input.size() - off, max_write));
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    close(fds[1]);
  });
  std::vector<std::string> lines;
  LineReader reader(fds[0], max_line);
  uint64_t expected_first = 1;
  LineBatch recycled;
  while (true) {
    LineBatch fresh;
    LineBatch& batch = recycle ? recycled : fresh;
    batch.first_line = expected_first;
    if (!reader.next(batch, batch_lines, 1 << 20)) break;
    for (const auto& l : batch.lines) {
      if (l.oversize) {
        lines.push_back("<" + std::to_string(l.oversize) + " bytes>");
        continue;
      }
      // What the parser is promised: the newline, then padding it may read.
      EXPECT_GE(batch.data.size(), l.offset + l.length + 1 + civicsift::kParserPadding);
      EXPECT_EQ(batch.data[l.offset + l.length], '\n');
      lines.push_back(batch.data.substr(l.offset, l.length));
    }
    expected_first += batch.lines.size();
  }
  writer.join();
  close(fds[0]);
  return lines;
}
}  // namespace

TEST(LineReader, SplitsLinesKeepingEmptyOnesAndAnUnterminatedLast) {
  EXPECT_EQ(read_all("a\n\nb\nlast", 100), (std::vector<std::string>{"a", "", "b", "last"}));
  EXPECT_EQ(read_all("a\nb\n", 100), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(read_all("", 100).empty());
}

TEST(LineReader, SkipsOversizeLinesButCountsThem) {
  const std::string big(5000, 'x');
  EXPECT_EQ(read_all("ok\n" + big + "\nafter\n" + big, 100),
            (std::vector<std::string>{"ok", "<5000 bytes>", "after", "<5000 bytes>"}));
}

// The limit is on a line's content: a CRLF ending's '\r' does not count, whether the
// line ends in a newline or the input ends after the '\r'.
TEST(LineReader, ALineAtTheLimitWithACrlfEndingIsKept) {
  const std::string at_limit(100, 'x'), over(101, 'x');
  EXPECT_EQ(read_all(at_limit + "\r\n" + over + "\r\n" + at_limit + "\r", 100),
            (std::vector<std::string>{at_limit + "\r", "<101 bytes>", at_limit + "\r"}));
  EXPECT_EQ(read_all(over, 100), (std::vector<std::string>{"<101 bytes>"}));
  EXPECT_EQ(read_all(at_limit, 100), (std::vector<std::string>{at_limit}));
  // An oversize line's length is its content's too, when its '\r' comes in one read and
  // its '\n' in the next, or the input ends after the '\r'.
  const std::string big(5000, 'x');
  EXPECT_EQ(read_all(big + "\r\nafter\n", 100, 3, false, 5001), (std::vector<std::string>{"<5000 bytes>", "after"}));
  EXPECT_EQ(read_all(big + "\r", 100), (std::vector<std::string>{"<5000 bytes>"}));
}

// A read that fails mid-line (here a connection reset after "{\"id\":"): the lines
// before come out, the cut-short one does not (it would read as a malformed
// comment), and the error is there to report.
TEST(LineReader, AReadErrorMidLineKeepsTheLinesBeforeAndNotThePartialOne) {
  const int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof address;
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&address), size), 0);
  ASSERT_EQ(listen(listener, 1), 0);
  ASSERT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&address), &size), 0);
  const int writer = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_EQ(connect(writer, reinterpret_cast<sockaddr*>(&address), size), 0);
  const int input = accept(listener, nullptr, nullptr);
  ASSERT_GE(input, 0);
  const std::string sent = "first\nsecond\n{\"id\":";
  ASSERT_EQ(write(writer, sent.data(), sent.size()), static_cast<ssize_t>(sent.size()));

  LineReader reader(input, 100);
  LineBatch batch;
  ASSERT_TRUE(reader.next(batch, 10, 1 << 20));
  ASSERT_EQ(batch.lines.size(), 2u);
  EXPECT_EQ(batch.data.substr(batch.lines[1].offset, batch.lines[1].length), "second");
  const linger reset{1, 0};  // close with a reset: the reader's next read fails
  setsockopt(writer, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  close(writer);
  LineBatch after;
  EXPECT_FALSE(reader.next(after, 10, 1 << 20));
  EXPECT_TRUE(after.lines.empty());
  EXPECT_EQ(reader.error(), std::strerror(ECONNRESET));
  close(input);
  close(listener);
}

// Megabytes of lines of every length, oversize ones among them (some longer than the
// reader's buffer), read in batches cut by line count and by bytes, fresh or recycled:
// every line comes out once, in order, whole.
TEST(LineReader, KeepsEveryLineAcrossBufferRefillsAndHandOvers) {
  std::mt19937 rng(7);
  const size_t max_line = 3000;
  std::string input;
  std::vector<std::string> expected;
  while (input.size() < (5u << 20)) {
    const size_t pick = rng() % 1000;
    const size_t length = pick == 0 ? (1u << 20) + rng() % 100000  // longer than the buffer
                          : pick < 20 ? max_line + 1 + rng() % 5000
                                      : rng() % 400;
    std::string line(length, ' ');
    for (char& c : line) c = static_cast<char>('a' + rng() % 26);
    input += line;
    input += '\n';
    expected.push_back(length > max_line ? "<" + std::to_string(length) + " bytes>" : line);
  }
  input += "last line, no newline";
  expected.push_back("last line, no newline");
  for (const size_t batch_lines : {size_t{3}, size_t{4096}})
    for (const bool recycle : {false, true}) {
      SCOPED_TRACE(testing::Message() << "batch_lines " << batch_lines << (recycle ? ", recycled" : ", fresh"));
      const auto lines = read_all(input, max_line, batch_lines, recycle, 65536);
      ASSERT_EQ(lines.size(), expected.size());
      for (size_t i = 0; i < lines.size(); ++i)  // one line's mismatch, not megabytes of them
        ASSERT_EQ(lines[i], expected[i]) << "line " << i + 1;
    }
}

// With a limit far above the lines read, the buffers stay small; a line longer than
// they are, yet within the limit, grows them and comes out whole, and one over the
// limit is still counted, not kept.
TEST(LineReader, BuffersFollowTheLongestLineReadNotTheLimit) {
  const size_t limit = size_t{256} << 20;
  size_t largest_buffer = 0;
  {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    ASSERT_EQ(write(fds[1], "a\nb\n", 4), 4);
    close(fds[1]);
    LineReader reader(fds[0], limit);
    LineBatch batch;
    ASSERT_TRUE(reader.next(batch, 10, 1 << 20));
    EXPECT_EQ(batch.lines.size(), 2u);
    largest_buffer = batch.data.size();
    close(fds[0]);
  }
  EXPECT_LT(largest_buffer, size_t{4} << 20);

  std::string long_line(3u << 20, 'y'), over_limit(6u << 20, 'z');
  long_line[12345] = 'x';
  EXPECT_EQ(read_all("a\n" + long_line + "\nb\n" + over_limit + "\nc", 5u << 20, 3, true, 65536),
            (std::vector<std::string>{"a", long_line, "b", "<6291456 bytes>", "c"}));
}

// Lines that came in one read are all answered although the writer has not closed:
// a batch cut at `max_lines` leaves the rest buffered, and the next call hands them
// over instead of waiting on the pipe for more (`tail -f ... | civicsift scan`).
TEST(LineReader, HandsOverBufferedLinesWithoutWaitingForMoreInput) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  std::string input;
  for (int i = 0; i < 9999; ++i) input += "{}\n";
  ASSERT_EQ(write(fds[1], input.data(), input.size()), static_cast<ssize_t>(input.size()));
  LineReader reader(fds[0], 100);
  auto read_two_batches = std::async(std::launch::async, [&] {
    LineBatch first, second;
    reader.next(first, 4096, 1 << 20);
    reader.next(second, 9999, 1 << 20);
    return first.lines.size() + second.lines.size();
  });
  const bool answered = read_two_batches.wait_for(std::chrono::seconds(30)) == std::future_status::ready;
  close(fds[1]);  // unblocks a reader that waited, so a failure ends the test
  EXPECT_TRUE(answered) << "the reader waited for input while holding complete lines";
  EXPECT_EQ(read_two_batches.get(), 9999u);
  close(fds[0]);
}

// A consumer that gives up (its output closed) must not wait for a quiet writer, and
// the unfinished line it was waiting on is not handed over as a line.
TEST(LineReader, ACancelStopsAReaderWaitingOnAQuietPipe) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  ASSERT_EQ(write(fds[1], "{}\n{\"te", 6), 6);
  std::atomic<bool> cancel{false};
  LineReader reader(fds[0], 100, &cancel);
  LineBatch first;
  ASSERT_TRUE(reader.next(first, 10, 1 << 20));
  EXPECT_EQ(first.lines.size(), 1u);
  auto read_more = std::async(std::launch::async, [&] {
    LineBatch next;
    return reader.next(next, 10, 1 << 20);
  });
  EXPECT_EQ(read_more.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout);  // it waits
  cancel.store(true);
  const bool stopped = read_more.wait_for(std::chrono::seconds(30)) == std::future_status::ready;
  close(fds[1]);  // unblocks a reader that ignored the cancel, so a failure ends the test
  EXPECT_TRUE(stopped) << "the reader kept waiting after the cancel";
  EXPECT_FALSE(read_more.get());
  EXPECT_TRUE(reader.cancelled());
  EXPECT_EQ(reader.error(), "");
  close(fds[0]);
}
