// Live progress of a load phase on stderr: a redrawn bar with the current rate on a terminal, a plain line a
// second otherwise. The phase's own waiting thread feeds it; it starts no thread. CAF-free.
#pragma once

#include "bench/load.hpp"

#include <chrono>
#include <cstdint>
#include <ostream>
#include <string>

namespace bench {

class progress_meter {
public:
  using clock = std::chrono::steady_clock;

  /// `automatic` picks the bar when stderr is a terminal; `none` prints nothing.
  explicit progress_meter(progress_style style, std::ostream& out);

  /// Starts a phase: `expected_total` operations (0 when unknown) or `expected_seconds` (0 when unknown).
  void begin(std::string label, std::uint64_t expected_total, double expected_seconds);
  /// Reports the operations done so far and those outstanding; draws at most 10 times a second (bar) or once
  /// a second (lines). `done` is only called when something is drawn.
  template <class Done>
  void update(Done&& done, std::uint64_t in_flight) {
    if (style_ == progress_style::none)
      return;
    auto now = clock::now();
    if (now < next_draw_)
      return;
    draw(now, done(), in_flight, false);
  }
  /// Ends the phase with a final figure (the bar is completed and its line ended).
  void end(std::uint64_t done);

  bool enabled() const { return style_ != progress_style::none; }

private:
  void draw(clock::time_point now, std::uint64_t done, std::uint64_t in_flight, bool final);

  progress_style style_;
  std::ostream& out_;
  std::string label_;
  std::uint64_t expected_total_ = 0;
  double expected_seconds_ = 0;
  clock::time_point started_{};
  clock::time_point next_draw_{};
  clock::time_point last_draw_{};
  std::uint64_t last_done_ = 0;
};

} // namespace bench
