// The log-linear histogram's index arithmetic (HdrHistogram's, with a unit of 1) and the striped recorder.
#include "bench/histogram.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace bench {
namespace {

int magnitude_of(std::uint64_t power_of_two) {
  return 63 - __builtin_clzll(power_of_two);
}

std::uint64_t sub_bucket_count_for(int significant_digits) {
  std::uint64_t largest_exact = 2;
  for (int digit = 0; digit < significant_digits; ++digit)
    largest_exact *= 10;
  std::uint64_t count = 1;
  while (count < largest_exact)
    count <<= 1;
  return count;
}

} // namespace

histogram::histogram(int significant_digits, std::uint64_t highest_trackable)
  : significant_digits_(significant_digits), highest_trackable_(highest_trackable) {
  if (significant_digits < 1 || significant_digits > 4)
    throw std::invalid_argument("a histogram keeps 1..4 significant digits, not " + std::to_string(significant_digits));
  auto sub_bucket_count = sub_bucket_count_for(significant_digits);
  if (highest_trackable < 2 * sub_bucket_count)
    throw std::invalid_argument("a histogram's highest trackable value must be at least "
                                + std::to_string(2 * sub_bucket_count));
  sub_bucket_half_count_ = sub_bucket_count / 2;
  sub_bucket_half_count_magnitude_ = magnitude_of(sub_bucket_half_count_);
  sub_bucket_mask_ = sub_bucket_count - 1;
  // Buckets needed so that the last one reaches highest_trackable; each doubles the covered range.
  std::size_t buckets = 1;
  std::uint64_t smallest_untrackable = sub_bucket_count;
  while (smallest_untrackable <= highest_trackable) {
    if (smallest_untrackable > std::numeric_limits<std::uint64_t>::max() / 2) {
      ++buckets;
      break;
    }
    smallest_untrackable <<= 1;
    ++buckets;
  }
  counts_.assign((buckets + 1) * sub_bucket_half_count_, 0);
}

std::size_t histogram::index_of(std::uint64_t value) const noexcept {
  // The bucket: how many doublings above the first bucket's range the value lies.
  auto bucket = (64 - __builtin_clzll(value | sub_bucket_mask_)) - (sub_bucket_half_count_magnitude_ + 1);
  auto sub_bucket = value >> bucket;
  return (static_cast<std::size_t>(bucket + 1) << sub_bucket_half_count_magnitude_)
         + static_cast<std::size_t>(sub_bucket - sub_bucket_half_count_);
}

std::uint64_t histogram::value_at(std::size_t index) const noexcept {
  auto bucket = static_cast<int>(index >> sub_bucket_half_count_magnitude_) - 1;
  auto sub_bucket = (index & (sub_bucket_half_count_ - 1)) + sub_bucket_half_count_;
  if (bucket < 0) {
    sub_bucket -= sub_bucket_half_count_;
    bucket = 0;
  }
  return static_cast<std::uint64_t>(sub_bucket) << bucket;
}

std::uint64_t histogram::lowest_equivalent(std::uint64_t value) const noexcept {
  return value_at(index_of(std::min(value, highest_trackable_)));
}

std::uint64_t histogram::highest_equivalent(std::uint64_t value) const noexcept {
  auto clamped = std::min(value, highest_trackable_);
  auto bucket = (64 - __builtin_clzll(clamped | sub_bucket_mask_)) - (sub_bucket_half_count_magnitude_ + 1);
  return lowest_equivalent(clamped) + (std::uint64_t{1} << bucket) - 1;
}

void histogram::record(std::uint64_t value, std::uint64_t times) noexcept {
  if (times == 0)
    return;
  counts_[index_of(std::min(value, highest_trackable_))] += times;
  if (count_ == 0 || value < min_)
    min_ = value;
  max_ = std::max(max_, value);
  count_ += times;
  sum_ += static_cast<long double>(value) * static_cast<long double>(times);
}

void histogram::merge(const histogram& other) {
  if (other.count_ == 0)
    return;
  auto merged_min = count_ ? std::min(min_, other.min_) : other.min_;
  auto merged_max = std::max(max_, other.max_);
  auto merged_sum = sum_ + other.sum_;
  auto merged_count = count_ + other.count_;
  if (other.significant_digits_ == significant_digits_ && other.counts_.size() == counts_.size()) {
    for (std::size_t index = 0; index < counts_.size(); ++index)
      counts_[index] += other.counts_[index];
  } else {
    for (std::size_t index = 0; index < other.counts_.size(); ++index)
      if (other.counts_[index] != 0)
        counts_[index_of(std::min(other.highest_equivalent(other.value_at(index)), highest_trackable_))] +=
          other.counts_[index];
  }
  count_ = merged_count;
  min_ = merged_min;
  max_ = merged_max;
  sum_ = merged_sum;
}

void histogram::reset() noexcept {
  std::fill(counts_.begin(), counts_.end(), 0);
  count_ = 0;
  min_ = 0;
  max_ = 0;
  sum_ = 0;
}

double histogram::mean() const noexcept {
  return count_ ? static_cast<double>(sum_ / static_cast<long double>(count_)) : 0.0;
}

std::uint64_t histogram::percentile(double percent) const noexcept {
  if (count_ == 0)
    return 0;
  percent = std::clamp(percent, 0.0, 100.0);
  // The rank of the exact percentile; the small slack keeps 99% of 1000 at rank 990, not 991 by rounding.
  auto wanted = std::ceil(static_cast<long double>(percent) * static_cast<long double>(count_) / 100.0L - 1e-9L);
  auto rank = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::max(wanted, 0.0L)));
  if (rank >= count_)
    return max_; // exact, even for values above highest_trackable
  std::uint64_t seen = 0;
  for (std::size_t index = 0; index < counts_.size(); ++index) {
    seen += counts_[index];
    if (seen >= rank)
      return std::min(highest_equivalent(value_at(index)), max_);
  }
  return max_;
}

double histogram::relative_precision() const noexcept {
  return 1.0 / static_cast<double>(sub_bucket_half_count_);
}

void outcome_tally::merge(const outcome_tally& other) noexcept {
  accepted += other.accepted;
  rejected += other.rejected;
  invalid_answered += other.invalid_answered;
  invalid_rejected += other.invalid_rejected;
  wrong_code += other.wrong_code;
  valid_rejected += other.valid_rejected;
  overloaded += other.overloaded;
  invalid_overloaded += other.invalid_overloaded;
  rejected_after_overload += other.rejected_after_overload;
  last_completion_ns = std::max(last_completion_ns, other.last_completion_ns);
}

striped_recorder::striped_recorder(int significant_digits) {
  stripes_.reserve(stripe_count);
  for (std::size_t index = 0; index < stripe_count; ++index)
    stripes_.push_back(std::make_unique<stripe>(significant_digits));
}

striped_recorder::stripe& striped_recorder::local_stripe() {
  // One number per thread, shared by every recorder: threads spread over the stripes in order of first use.
  static std::atomic<std::size_t> next_thread{0};
  thread_local std::size_t thread_number = next_thread.fetch_add(1, std::memory_order_relaxed);
  return *stripes_[thread_number % stripe_count];
}

histogram striped_recorder::latencies() const {
  histogram merged{stripes_.front()->latencies.significant_digits()};
  for (const auto& one : stripes_) {
    std::lock_guard lock{one->mutex};
    merged.merge(one->latencies);
  }
  return merged;
}

outcome_tally striped_recorder::tally() const {
  outcome_tally merged;
  for (const auto& one : stripes_) {
    std::lock_guard lock{one->mutex};
    merged.merge(one->tally);
  }
  return merged;
}

std::uint64_t striped_recorder::count() const {
  std::uint64_t total = 0;
  for (const auto& one : stripes_) {
    std::lock_guard lock{one->mutex};
    total += one->latencies.count();
  }
  return total;
}

void striped_recorder::reset() {
  for (auto& one : stripes_) {
    std::lock_guard lock{one->mutex};
    one->latencies.reset();
    one->tally = outcome_tally{};
  }
}

} // namespace bench
