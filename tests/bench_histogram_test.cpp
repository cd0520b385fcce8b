// The load tester's histogram against exact percentiles of known distributions, and its merge and recorder.
#include "bench/histogram.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <thread>
#include <vector>

namespace {

/// The exact percentile the histogram approximates: the value at rank ceil(percent / 100 * n) of the sorted values.
std::uint64_t exact_percentile(std::vector<std::uint64_t> sorted, double percent) {
  auto rank = static_cast<std::size_t>(std::ceil(percent * static_cast<double>(sorted.size()) / 100.0 - 1e-9));
  rank = std::clamp<std::size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

/// Records `values` and checks every percentile against the sorted values, within the stated precision.
void check_percentiles(const std::vector<std::uint64_t>& values) {
  bench::histogram recorded;
  for (auto value : values)
    recorded.record(value);
  auto sorted = values;
  std::sort(sorted.begin(), sorted.end());
  for (double percent : {0.0, 1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 99.0, 99.9, 99.99, 100.0}) {
    auto exact = exact_percentile(sorted, percent);
    auto reported = recorded.percentile(percent);
    INFO("percentile " << percent << ": exact " << exact << ", reported " << reported);
    // Reported as the highest value of the exact value's slot: never below it, at most one slot width above.
    CHECK(reported >= exact);
    CHECK(static_cast<double>(reported - exact) <= static_cast<double>(exact) * recorded.relative_precision());
  }
  CHECK(recorded.count() == values.size());
  CHECK(recorded.min() == sorted.front());
  CHECK(recorded.max() == sorted.back());
}

} // namespace

TEST_CASE("a histogram with two significant digits is precise to one part in 128") {
  bench::histogram recorded{2};
  CHECK(recorded.relative_precision() == Approx(1.0 / 128));
  CHECK(bench::histogram{3}.relative_precision() == Approx(1.0 / 1024));
}

TEST_CASE("small values are counted exactly, larger ones in slots that widen with the value") {
  bench::histogram recorded;
  for (std::uint64_t value : {0ULL, 1ULL, 200ULL, 255ULL})
    CHECK(recorded.highest_equivalent(value) == value);
  // 1000 lies in the bucket 512..1023, whose slots are 4 wide.
  CHECK(recorded.lowest_equivalent(1000) == 1000);
  CHECK(recorded.highest_equivalent(1000) == 1003);
  CHECK(recorded.lowest_equivalent(1'000'003) == 999'424);
  CHECK(recorded.highest_equivalent(1'000'003) == 1'003'519);
}

TEST_CASE("percentiles of a uniform distribution are within the histogram's precision of the exact ones") {
  std::vector<std::uint64_t> values;
  for (std::uint64_t value = 1; value <= 100'000; ++value)
    values.push_back(value);
  std::shuffle(values.begin(), values.end(), std::mt19937_64{7});
  check_percentiles(values);
}

TEST_CASE("percentiles of an exponential distribution are within the histogram's precision of the exact ones") {
  std::mt19937_64 generator{11};
  std::exponential_distribution<double> latency{1.0 / 50'000.0};
  std::vector<std::uint64_t> values;
  for (int sample = 0; sample < 200'000; ++sample)
    values.push_back(static_cast<std::uint64_t>(latency(generator)));
  check_percentiles(values);
}

TEST_CASE("percentiles of values spread over twelve decades stay within the histogram's precision") {
  std::mt19937_64 generator{13};
  std::uniform_real_distribution<double> exponent{0.0, 12.0};
  std::vector<std::uint64_t> values;
  for (int sample = 0; sample < 100'000; ++sample)
    values.push_back(static_cast<std::uint64_t>(std::pow(10.0, exponent(generator))));
  check_percentiles(values);
}

TEST_CASE("a constant distribution reports the constant at every percentile") {
  bench::histogram recorded;
  recorded.record(777, 5000);
  for (double percent : {0.0, 50.0, 99.0, 99.9, 100.0})
    CHECK(recorded.percentile(percent) == 777);
  CHECK(recorded.min() == 777);
  CHECK(recorded.max() == 777);
  CHECK(recorded.mean() == Approx(777));
  CHECK(recorded.count() == 5000);
}

TEST_CASE("an empty histogram reports zero everywhere") {
  bench::histogram recorded;
  CHECK(recorded.count() == 0);
  CHECK(recorded.min() == 0);
  CHECK(recorded.max() == 0);
  CHECK(recorded.mean() == 0);
  CHECK(recorded.percentile(99) == 0);
}

TEST_CASE("min, max, count and mean are exact whatever the slots") {
  bench::histogram recorded;
  for (std::uint64_t value : {1'000'003ULL, 17ULL, 123'456'789ULL, 4'000ULL})
    recorded.record(value);
  CHECK(recorded.count() == 4);
  CHECK(recorded.min() == 17);
  CHECK(recorded.max() == 123'456'789);
  CHECK(recorded.mean() == Approx((1'000'003.0 + 17 + 123'456'789 + 4'000) / 4));
  CHECK(recorded.percentile(100) == 123'456'789);
}

TEST_CASE("a value above the highest trackable is counted and kept exactly as the max") {
  bench::histogram recorded{2, 1'000'000};
  recorded.record(10);
  recorded.record(50'000'000);
  CHECK(recorded.count() == 2);
  CHECK(recorded.max() == 50'000'000);
  CHECK(recorded.percentile(100) == 50'000'000);
  CHECK(recorded.percentile(50) == 10);
}

TEST_CASE("merging two histograms gives the histogram of all their values") {
  std::mt19937_64 generator{17};
  std::lognormal_distribution<double> latency{9.0, 1.5};
  bench::histogram first;
  bench::histogram second;
  bench::histogram whole;
  for (int sample = 0; sample < 50'000; ++sample) {
    auto value = static_cast<std::uint64_t>(latency(generator));
    (sample % 3 == 0 ? first : second).record(value);
    whole.record(value);
  }
  first.merge(second);
  CHECK(first.count() == whole.count());
  CHECK(first.min() == whole.min());
  CHECK(first.max() == whole.max());
  CHECK(first.mean() == Approx(whole.mean()));
  for (double percent : {1.0, 50.0, 90.0, 99.0, 99.9})
    CHECK(first.percentile(percent) == whole.percentile(percent));
}

TEST_CASE("merging histograms of different precision keeps the coarser precision") {
  bench::histogram coarse{2};
  bench::histogram fine{3};
  std::vector<std::uint64_t> values;
  for (std::uint64_t value = 1000; value < 200'000; value += 37) {
    (value % 2 ? coarse : fine).record(value);
    values.push_back(value);
  }
  coarse.merge(fine);
  CHECK(coarse.count() == values.size());
  for (double percent : {10.0, 50.0, 99.0}) {
    auto exact = exact_percentile(values, percent);
    auto reported = coarse.percentile(percent);
    CHECK(std::abs(static_cast<double>(reported) - static_cast<double>(exact))
          <= 2 * static_cast<double>(exact) * coarse.relative_precision());
  }
}

TEST_CASE("a histogram refuses a precision it cannot keep") {
  CHECK_THROWS_AS(bench::histogram{0}, std::invalid_argument);
  CHECK_THROWS_AS(bench::histogram{5}, std::invalid_argument);
  CHECK_THROWS_AS((bench::histogram{2, 100}), std::invalid_argument);
}

TEST_CASE("a striped recorder sums what many threads recorded") {
  bench::striped_recorder recorder;
  constexpr int threads = 8;
  constexpr int per_thread = 10'000;
  {
    std::vector<std::jthread> workers;
    for (int thread = 0; thread < threads; ++thread)
      workers.emplace_back([&recorder, thread] {
        for (int sample = 0; sample < per_thread; ++sample)
          recorder.record(static_cast<std::uint64_t>(1000 + thread),
                          [](bench::outcome_tally& tally) { ++tally.accepted; });
      });
  }
  CHECK(recorder.count() == threads * per_thread);
  CHECK(recorder.tally().accepted == threads * per_thread);
  auto merged = recorder.latencies();
  CHECK(merged.min() == 1000);
  CHECK(merged.max() == 1000 + threads - 1);
  recorder.reset();
  CHECK(recorder.count() == 0);
}
