// app: a byte stream -> batches of lines, in constant memory whatever the input size.
#pragma once

#include <atomic>
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
  // The buffer the lines were read into: each kept line is followed by '\n' and at
  // least kParserPadding more readable bytes; bytes outside the lines mean nothing.
  std::string data;
  std::vector<Line> lines;
  std::string output;       // filled by whoever processes the batch
};

class LineReader {
 public:
  // `fd` is read, not closed. Lines longer than `max_line_bytes` are skipped, their length kept.
  // Once `cancel` (optional) is set, reading stops, even when a pipe has kept the
  // reader waiting: a consumer that gives up is not held up by a quiet writer
  // (`tail -f ... | civicsift scan | head`). An unfinished last line is dropped.
  LineReader(int fd, size_t max_line_bytes, const std::atomic<bool>* cancel = nullptr);

  // Fills `batch` with the next lines, up to `max_lines` or about `max_bytes`, as read
  // from the input and without copying them: the batch takes over the reader's buffer
  // and the reader goes on in the batch's previous `data` (recycling batches recycles
  // buffers). Returns false when the input is exhausted and nothing was added. A last
  // line without a newline still counts (not after a failed read: see error()); a final
  // newline does not start another line.
  bool next(LineBatch& batch, size_t max_lines, size_t max_bytes);

  // Set when a read failed (errno text). The batches read before stay valid; the line
  // the failure cut short is in none of them.
  const std::string& error() const { return error_; }
  // Set when reading stopped on `cancel`, not at the end of the input.
  bool cancelled() const { return cancelled_; }

 private:
  // Moves the unread bytes to the front of buf_ and reads once, up to capacity_ bytes;
  // false when nothing more came (end of input, an error, or cancelled).
  bool fill();
  // Waits until a read would not block; false when cancelled first.
  bool wait_readable() const;
  // True when a read would not wait (regular files always; pipes when bytes came).
  bool readable_now() const;
  // Doubles the buffer, up to what the longest allowed line needs; false at that size.
  bool grow();

  static constexpr size_t kInitialCapacity = size_t{1} << 20;

  int fd_;
  const std::atomic<bool>* cancel_;
  size_t max_line_;
  size_t max_capacity_;  // room for the longest allowed line, its '\r' and its '\n'
  size_t capacity_;      // bytes read ahead at most; buf_ has room for a '\n' and the padding after them
  std::string buf_;
  size_t begin_ = 0, end_ = 0;  // buf_[begin_, end_): read, not yet in a batch
  bool eof_ = false;
  bool cancelled_ = false;
  uint64_t discarding_ = 0;  // > 0: inside an oversize line, bytes seen so far
  bool discarded_cr_ = false;  // the last byte dropped was a '\r' (not counted if a '\n' follows)
  std::string error_;
};

// Bytes the JSON parser may read past the end of a line (simdjson's padding).
inline constexpr size_t kParserPadding = 64;

}  // namespace civicsift
