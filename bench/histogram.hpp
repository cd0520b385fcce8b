// A log-linear latency histogram in the manner of HdrHistogram: fixed relative precision, constant-time record,
// mergeable; and a striped variant that many threads record into behind cheap per-stripe locks. CAF-free.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace bench {

/// Counts values in buckets whose width grows with the value, so that every value is kept to a fixed number of
/// significant decimal digits: with 2 digits, a percentile is reported within 1% of the recorded value it stands
/// for, whatever its magnitude. Recording is an index computation and an increment, never a sort.
///
/// Layout (as HdrHistogram): `sub_bucket_count` = the power of two at or above 2 * 10^digits linear slots cover
/// 0 .. sub_bucket_count - 1 exactly; each further bucket covers twice the range of the one before with
/// sub_bucket_count / 2 slots, so a slot's width is at most value / (sub_bucket_count / 2).
class histogram {
public:
  /// Keeps `significant_digits` (1..4) decimal digits for values 0..`highest_trackable` (larger values are
  /// counted as `highest_trackable`; max() still reports them exactly).
  explicit histogram(int significant_digits = 2, std::uint64_t highest_trackable = default_highest_trackable);

  /// One hour in nanoseconds: the default ceiling for latencies recorded in nanoseconds.
  static constexpr std::uint64_t default_highest_trackable = 3'600'000'000'000ULL;

  /// Counts `value` `times` times.
  void record(std::uint64_t value, std::uint64_t times = 1) noexcept;

  /// Adds every count of `other`. Layouts that differ are merged value by value (each slot's highest
  /// equivalent value), which keeps the result within the coarser of the two precisions.
  void merge(const histogram& other);

  /// Forgets every value.
  void reset() noexcept;

  std::uint64_t count() const noexcept { return count_; }
  /// Smallest and largest values recorded, exactly; 0 when empty.
  std::uint64_t min() const noexcept { return count_ ? min_ : 0; }
  std::uint64_t max() const noexcept { return max_; }
  /// Arithmetic mean of the values recorded, exactly (from a running sum); 0 when empty.
  double mean() const noexcept;

  /// The value at or below which `percent` (0..100) of the recorded values lie, as the highest value of the
  /// slot holding that rank (so never below the exact value), capped at max(). 0 when empty.
  /// Exactly: for n values sorted ascending, the one at rank ceil(percent / 100 * n) (rank 1 for percent 0),
  /// within relative_precision().
  std::uint64_t percentile(double percent) const noexcept;

  /// The largest relative error of a reported value: 1 / (sub_bucket_count / 2), 1/128 for 2 digits.
  double relative_precision() const noexcept;

  /// The smallest and the largest value counted in the same slot as `value`.
  std::uint64_t lowest_equivalent(std::uint64_t value) const noexcept;
  std::uint64_t highest_equivalent(std::uint64_t value) const noexcept;

  int significant_digits() const noexcept { return significant_digits_; }
  std::uint64_t highest_trackable() const noexcept { return highest_trackable_; }

private:
  std::size_t index_of(std::uint64_t value) const noexcept;
  std::uint64_t value_at(std::size_t index) const noexcept;

  int significant_digits_;
  std::uint64_t highest_trackable_;
  /// log2(sub_bucket_count / 2).
  int sub_bucket_half_count_magnitude_;
  std::uint64_t sub_bucket_half_count_;
  std::uint64_t sub_bucket_mask_;
  std::vector<std::uint64_t> counts_;
  std::uint64_t count_ = 0;
  std::uint64_t min_ = 0;
  std::uint64_t max_ = 0;
  /// Sum of the values, for the mean; long double keeps it exact far beyond what a run records.
  long double sum_ = 0;
};

/// What one reply told: how a run counts outcomes next to latencies (kept in the same stripe, under its lock).
struct outcome_tally {
  std::uint64_t accepted = 0;
  std::uint64_t rejected = 0;
  /// Replies to commands meant to break a rule, and how many of them were rejections.
  std::uint64_t invalid_answered = 0;
  std::uint64_t invalid_rejected = 0;
  /// Invalid commands rejected, but for another rule than the one they break.
  std::uint64_t wrong_code = 0;
  /// Valid commands that were rejected (a correctness failure).
  std::uint64_t valid_rejected = 0;
  /// Commands the engine refused as overloaded (not in `rejected`), and how many of them were invalid ones.
  std::uint64_t overloaded = 0;
  std::uint64_t invalid_overloaded = 0;
  /// Valid commands rejected by a rule only because an earlier command of their order was refused as overloaded.
  std::uint64_t rejected_after_overload = 0;
  /// Latest completion time seen, in nanoseconds of the run's clock.
  std::int64_t last_completion_ns = 0;

  void merge(const outcome_tally& other) noexcept;
};

/// A histogram and a tally that many threads record into. Each thread keeps to one stripe (chosen round-robin on
/// its first record), so a stripe's mutex is almost never contended: recording costs an uncontended lock.
class striped_recorder {
public:
  static constexpr std::size_t stripe_count = 32;

  explicit striped_recorder(int significant_digits = 2);

  /// Records a latency (nanoseconds) and lets `count` update the stripe's tally, under the stripe's lock.
  template <class UpdateTally>
  void record(std::uint64_t latency_ns, UpdateTally&& count) {
    auto& stripe = local_stripe();
    std::lock_guard lock{stripe.mutex};
    stripe.latencies.record(latency_ns);
    count(stripe.tally);
  }
  void record(std::uint64_t latency_ns) {
    record(latency_ns, [](outcome_tally&) {});
  }
  /// Updates the stripe's tally without a latency (a reply that did no work, such as an overloaded refusal).
  template <class UpdateTally>
  void count_only(UpdateTally&& count) {
    auto& stripe = local_stripe();
    std::lock_guard lock{stripe.mutex};
    count(stripe.tally);
  }

  /// All stripes merged (each read under its lock: safe while others record).
  histogram latencies() const;
  outcome_tally tally() const;
  /// Number of latencies recorded so far (cheap enough to poll a few hundred times a second).
  std::uint64_t count() const;
  void reset();

private:
  struct stripe {
    mutable std::mutex mutex;
    histogram latencies;
    outcome_tally tally;
    explicit stripe(int digits) : latencies(digits) {}
  };
  stripe& local_stripe();

  std::vector<std::unique_ptr<stripe>> stripes_;
};

} // namespace bench
