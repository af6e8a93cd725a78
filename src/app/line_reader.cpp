#include "app/line_reader.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace civicsift {

LineReader::LineReader(int fd, size_t max_line_bytes)
    : fd_(fd), max_line_(max_line_bytes), buf_(std::max<size_t>(1 << 20, max_line_bytes + 1)) {}

bool LineReader::fill() {
  if (eof_) return false;
  if (begin_ > 0) {  // keep the partial line at the front
    std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  while (end_ < buf_.size()) {
    const ssize_t n = ::read(fd_, buf_.data() + end_, buf_.size() - end_);
    if (n > 0) {
      end_ += static_cast<size_t>(n);
      return true;
    }
    if (n == 0) break;
    if (errno == EINTR) continue;
    error_ = std::strerror(errno);
    break;
  }
  eof_ = true;
  return false;
}

bool LineReader::next(LineBatch& batch, size_t max_lines, size_t max_bytes) {
  const size_t lines_before = batch.lines.size();
  auto keep = [&](const char* p, size_t n) {
    LineBatch::Line line;
    line.offset = static_cast<uint32_t>(batch.data.size());
    line.length = static_cast<uint32_t>(n);
    batch.data.append(p, n);
    batch.data.push_back('\n');
    batch.lines.push_back(line);
  };
  while (batch.lines.size() - lines_before < max_lines && batch.data.size() < max_bytes) {
    const char* start = buf_.data() + begin_;
    const size_t avail = end_ - begin_;
    const void* nl = avail ? std::memchr(start, '\n', avail) : nullptr;
    if (discarding_) {  // skip the rest of an oversize line
      if (nl) {
        const size_t n = static_cast<const char*>(nl) - start;
        batch.lines.push_back({static_cast<uint32_t>(batch.data.size()), 0, discarding_ + n});
        discarding_ = 0;
        begin_ += n + 1;
        continue;
      }
      discarding_ += avail;
      begin_ = end_;
      if (!fill()) {
        batch.lines.push_back({static_cast<uint32_t>(batch.data.size()), 0, discarding_});
        discarding_ = 0;
      }
      continue;
    }
    if (nl) {
      const size_t n = static_cast<const char*>(nl) - start;
      if (n > max_line_) batch.lines.push_back({static_cast<uint32_t>(batch.data.size()), 0, n});
      else keep(start, n);
      begin_ += n + 1;
      continue;
    }
    if (avail > max_line_) {
      discarding_ = avail;
      begin_ = end_;
      continue;
    }
    if (!fill()) {
      if (end_ > begin_) {  // last line without a newline
        keep(buf_.data() + begin_, end_ - begin_);
        begin_ = end_;
      }
      break;
    }
  }
  const bool added = batch.lines.size() > lines_before;
  if (added) batch.data.append(kParserPadding, ' ');
  return added;
}

}  // namespace civicsift
