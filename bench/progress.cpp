// Drawing the progress bar and the periodic lines.
#include "bench/progress.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace bench {
namespace {

constexpr auto bar_interval = std::chrono::milliseconds{100};
constexpr auto line_interval = std::chrono::seconds{1};
constexpr int bar_width = 30;

std::string with_commas(std::uint64_t value) {
  auto digits = std::to_string(value);
  std::string result;
  for (std::size_t index = 0; index < digits.size(); ++index) {
    if (index != 0 && (digits.size() - index) % 3 == 0)
      result += ',';
    result += digits[index];
  }
  return result;
}

} // namespace

progress_meter::progress_meter(progress_style style, std::ostream& out) : style_(style), out_(out) {
  if (style_ == progress_style::automatic)
    style_ = isatty(STDERR_FILENO) ? progress_style::bar : progress_style::lines;
}

void progress_meter::begin(std::string label, std::uint64_t expected_total, double expected_seconds) {
  label_ = std::move(label);
  expected_total_ = expected_total;
  expected_seconds_ = expected_seconds;
  started_ = last_draw_ = clock::now();
  next_draw_ = started_ + (style_ == progress_style::bar ? bar_interval : line_interval);
  last_done_ = 0;
}

void progress_meter::end(std::uint64_t done) {
  if (style_ == progress_style::none)
    return;
  draw(clock::now(), done, 0, true);
}

void progress_meter::draw(clock::time_point now, std::uint64_t done, std::uint64_t in_flight, bool final) {
  auto since_last = std::chrono::duration<double>(now - last_draw_).count();
  auto elapsed = std::chrono::duration<double>(now - started_).count();
  // The current rate over the last interval; the average over the phase on the final line.
  double rate = 0;
  if (final)
    rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0;
  else if (since_last > 0)
    rate = static_cast<double>(done - std::min(done, last_done_)) / since_last;
  double fraction = -1;
  if (expected_total_ > 0)
    fraction = std::min(1.0, static_cast<double>(done) / static_cast<double>(expected_total_));
  else if (expected_seconds_ > 0)
    fraction = std::min(1.0, elapsed / expected_seconds_);
  if (final)
    fraction = fraction >= 0 ? 1.0 : fraction;

  char figures[160];
  std::snprintf(figures, sizeof figures, "%s done, %s/s%s, %.1f s", with_commas(done).c_str(),
                with_commas(static_cast<std::uint64_t>(rate)).c_str(), final ? " average" : " now", elapsed);
  if (style_ == progress_style::bar) {
    std::string bar;
    if (fraction >= 0) {
      auto filled = static_cast<int>(fraction * bar_width + 0.5);
      bar = "[" + std::string(static_cast<std::size_t>(filled), '#')
            + std::string(static_cast<std::size_t>(bar_width - filled), '.') + "] "
            + std::to_string(static_cast<int>(fraction * 100)) + "% ";
    }
    out_ << "\r\033[2K" << label_ << ' ' << bar << figures;
    if (!final && in_flight > 0)
      out_ << ", " << with_commas(in_flight) << " in flight";
    if (final)
      out_ << '\n';
    out_.flush();
  } else {
    out_ << label_ << ": " << figures;
    if (fraction >= 0 && !final)
      out_ << " (" << static_cast<int>(fraction * 100) << "%)";
    if (!final && in_flight > 0)
      out_ << ", " << with_commas(in_flight) << " in flight";
    out_ << '\n';
    out_.flush();
  }
  last_draw_ = now;
  last_done_ = done;
  next_draw_ = now
               + (style_ == progress_style::bar ? std::chrono::duration_cast<clock::duration>(bar_interval)
                                                : std::chrono::duration_cast<clock::duration>(line_interval));
}

} // namespace bench
