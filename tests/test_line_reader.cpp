#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

#include "app/line_reader.h"

using civicsift::LineBatch;
using civicsift::LineReader;

namespace {
// Feeds `input` through a pipe and returns the lines (oversize ones as "<N bytes>").
std::vector<std::string> read_all(const std::string& input, size_t max_line, size_t batch_lines = 3) {
  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  std::thread writer([&] {
    size_t off = 0;
    while (off < input.size()) {
      const auto n = write(fds[1], input.data() + off, std::min<size_t>(input.size() - off, 7));
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    close(fds[1]);
  });
  std::vector<std::string> lines;
  LineReader reader(fds[0], max_line);
  uint64_t expected_first = 1;
  while (true) {
    LineBatch batch;
    batch.first_line = expected_first;
    if (!reader.next(batch, batch_lines, 1 << 20)) break;
    for (const auto& l : batch.lines)
      lines.push_back(l.oversize ? "<" + std::to_string(l.oversize) + " bytes>"
                                 : batch.data.substr(l.offset, l.length));
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
