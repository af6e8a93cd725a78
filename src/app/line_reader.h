// app: a byte stream -> batches of lines, in constant memory whatever the input size.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace civicsift {

struct LineBatch {
  struct Line {
    uint32_t offset = 0;    // into data
    uint32_t length = 0;
    uint64_t oversize = 0;  // > 0: the line was longer than the limit and not kept; its length
  };
  uint64_t sequence = 0;
  uint64_t first_line = 1;  // 1-based number of lines[0] in the whole input
  std::string data;         // the kept lines, each followed by '\n', then parser padding
  std::vector<Line> lines;
  std::string output;       // filled by whoever processes the batch
};

class LineReader {
 public:
  // `fd` is read, not closed. Lines longer than `max_line_bytes` are skipped, their length kept.
  LineReader(int fd, size_t max_line_bytes);

  // Appends up to `max_lines` lines or about `max_bytes` of data to `batch`. Returns
  // false when the input is exhausted and nothing was added. A last line without a
  // newline still counts; a final newline does not start another line.
  bool next(LineBatch& batch, size_t max_lines, size_t max_bytes);

  // Set when a read failed (errno text); the batches read before stay valid.
  const std::string& error() const { return error_; }

 private:
  bool fill();  // reads more into buf_; false at end of input or on error

  int fd_;
  size_t max_line_;
  std::vector<char> buf_;
  size_t begin_ = 0, end_ = 0;
  bool eof_ = false;
  uint64_t discarding_ = 0;  // > 0: inside an oversize line, bytes seen so far
  std::string error_;
};

// Bytes the JSON parser may read past the end of a line (simdjson's padding).
inline constexpr size_t kParserPadding = 64;

}  // namespace civicsift
