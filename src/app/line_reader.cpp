#include "app/line_reader.h"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace civicsift {

LineReader::LineReader(int fd, size_t max_line_bytes, const std::atomic<bool>* cancel)
    : fd_(fd),
      cancel_(cancel),
      max_line_(max_line_bytes),
      max_capacity_(std::max(kInitialCapacity, max_line_bytes + 2)),
      capacity_(kInitialCapacity),
      buf_(capacity_ + 1 + kParserPadding, ' ') {}

bool LineReader::grow() {
  if (capacity_ >= max_capacity_) return false;
  capacity_ = std::min(2 * capacity_, max_capacity_);
  buf_.resize(capacity_ + 1 + kParserPadding, ' ');
  return true;
}

bool LineReader::readable_now() const {
  pollfd p{fd_, POLLIN, 0};
  return ::poll(&p, 1, 0) != 0;  // an error too: the read that follows reports it
}

bool LineReader::wait_readable() const {
  if (!cancel_) return true;  // the read itself waits
  // In slices, to see a cancel while a pipe stays quiet.
  constexpr int kSliceMs = 100;
  while (!cancel_->load()) {
    pollfd p{fd_, POLLIN, 0};
    const int n = ::poll(&p, 1, kSliceMs);
    if (n != 0 && !(n < 0 && errno == EINTR)) return true;  // an error too: the read reports it
  }
  return false;
}

bool LineReader::fill() {
  if (eof_) return false;
  if (!wait_readable()) {
    eof_ = cancelled_ = true;
    return false;
  }
  if (begin_ > 0) {  // keep the partial line at the front
    std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  const size_t before = end_;
  // One read that brings bytes is enough: from a pipe (`tail -f ... | civicsift scan`)
  // the lines that came are answered now, not once a megabyte has gathered.
  while (end_ < capacity_) {
    const ssize_t n = ::read(fd_, buf_.data() + end_, capacity_ - end_);
    if (n > 0) {
      end_ += static_cast<size_t>(n);
      break;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) error_ = std::strerror(errno);
    eof_ = true;
    break;
  }
  return end_ > before;
}

bool LineReader::next(LineBatch& batch, size_t max_lines, size_t max_bytes) {
  batch.lines.clear();
  // Reading ahead only when it cannot wait: lines already here are answered now,
  // even when a pipe has nothing more yet.
  if (end_ - begin_ < capacity_ / 2 && (begin_ == end_ || readable_now())) fill();
  // buf_[kept_from, kept_end): the kept lines, each with its newline. Until one is
  // kept, reading on may move the buffer's bytes; after, a partial line waits for the
  // next batch.
  size_t kept_from = 0, kept_end = 0;
  auto keep = [&](size_t from, size_t length) {
    if (kept_end == 0) kept_from = from;
    batch.lines.push_back({static_cast<uint32_t>(from), static_cast<uint32_t>(length), 0});
    kept_end = from + length + 1;
  };
  while (batch.lines.size() < max_lines && kept_end - kept_from < max_bytes) {
    const char* start = buf_.data() + begin_;
    const size_t avail = end_ - begin_;
    const void* nl = avail ? std::memchr(start, '\n', avail) : nullptr;
    if (nl) {
      const auto n = static_cast<size_t>(static_cast<const char*>(nl) - start);
      // The limit is on the content: a CRLF ending's '\r' is not counted.
      const size_t content = n > 0 && start[n - 1] == '\r' ? n - 1 : n;
      if (discarding_ || content > max_line_) {
        // A CRLF split between reads: the '\r' was the last byte dropped.
        const uint64_t cr = n == 0 && discarded_cr_ ? 1 : 0;
        batch.lines.push_back({0, 0, discarding_ + content - cr});
        discarding_ = 0;
      } else {
        keep(begin_, n);
      }
      begin_ += n + 1;
      continue;
    }
    if (kept_end > 0) break;
    // A line longer than the buffer yet within the limit: the buffer grows for it, so
    // memory follows the longest line read, not the limit.
    if (!discarding_ && avail == capacity_ && grow()) {
      fill();
      continue;
    }
    // Inside an oversize line (one byte more may be a CRLF's '\r'): its bytes are dropped.
    if (discarding_ || avail > max_line_ + 1) {
      discarding_ += avail;
      discarded_cr_ = avail > 0 && buf_[end_ - 1] == '\r';
      begin_ = end_;
    }
    if (fill()) continue;
    // The input ended: a last line without a newline still counts. After a failed or
    // cancelled read the bytes held are only the start of a line, not passed on as one.
    if (!error_.empty() || cancelled_) {
      begin_ = end_;
      discarding_ = 0;
    } else if (discarding_) {
      batch.lines.push_back({0, 0, discarding_ - (discarded_cr_ ? 1 : 0)});
      discarding_ = 0;
    } else if (end_ > begin_) {
      const size_t content = end_ - begin_ - (buf_[end_ - 1] == '\r' ? 1 : 0);
      if (content > max_line_) {
        batch.lines.push_back({0, 0, content});
      } else {
        buf_[end_] = '\n';  // room for it is kept past capacity_
        keep(begin_, end_ - begin_);
      }
      begin_ = end_;
    }
    break;
  }
  if (batch.lines.empty()) return false;
  if (kept_end == 0) return true;  // oversize lines only: nothing to hand over
  const size_t unread = end_ - begin_;
  if (unread <= kept_end - kept_from) {
    // The batch takes the buffer the lines were read into, whole, and reading goes on
    // in the batch's previous buffer from the bytes not yet in a line: the smaller
    // part is the one copied.
    std::string next = std::move(batch.data);
    next.resize(buf_.size(), ' ');  // a recycled batch's buffer has this size already
    std::memcpy(next.data(), buf_.data() + begin_, unread);
    batch.data = std::move(buf_);
    buf_ = std::move(next);
    begin_ = 0;
    end_ = unread;
  } else {
    // Many short lines cut by max_lines: copying them out costs less than moving the rest.
    const size_t size = kept_end - kept_from;
    if (batch.data.size() < size + kParserPadding) batch.data.resize(size + kParserPadding, ' ');
    std::memcpy(batch.data.data(), buf_.data() + kept_from, size);
    for (auto& line : batch.lines)
      if (!line.oversize) line.offset -= static_cast<uint32_t>(kept_from);
  }
  return true;
}

}  // namespace civicsift
