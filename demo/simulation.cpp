// The simulation: seeded customers partitioned over client threads, a monitor thread that shows progress, and the
// final verification.
#include "demo/simulation.hpp"

#include "actors/overloaded.hpp"
#include "domain/orders.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <future>
#include <iomanip>
#include <mutex>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <variant>

namespace demo {
namespace {

using clock = std::chrono::steady_clock;

// The shop's products: a sku, its unit price, and how often customers pick it (a Zipf-like skew, so that the
// top products list has a clear head).
struct product {
  std::string_view sku;
  std::int64_t unit_price_cents;
};

constexpr std::array<product, 24> catalog{{
  {"apple", 45},   {"banana", 25},   {"bread", 320},  {"butter", 289},  {"cheese", 645},   {"coffee", 899},
  {"eggs", 399},   {"flour", 149},   {"honey", 749},  {"jam", 399},     {"lemon", 59},     {"milk", 119},
  {"noodles", 229}, {"olive-oil", 1099}, {"oranges", 349}, {"pasta", 199}, {"pepper", 279}, {"rice", 259},
  {"salt", 89},    {"sugar", 169},   {"tea", 449},    {"tomatoes", 299}, {"vinegar", 189}, {"yogurt", 79},
}};

constexpr std::array<std::string_view, 4> cancel_reasons{"changed my mind", "found it cheaper elsewhere",
                                                         "ordered by mistake", ""};

// Per mille of steps that send a command breaking a rule on purpose.
constexpr std::uint64_t deliberate_per_mille = 20;
// Per mille of add steps that remove a line instead (at most once per order).
constexpr std::uint64_t remove_per_mille = 100;
// Percent of accepted commands followed by a read of what they changed.
constexpr std::uint64_t read_percent = 50;

// SplitMix64's finaliser: spreads (seed, customer) into well-mixed generator seeds.
std::uint64_t mix(std::uint64_t value) {
  value += 0x9e3779b97f4a7c15ULL;
  value = (value ^ (value >> 30)) * 0xbf58476d1ce4e5b9ULL;
  value = (value ^ (value >> 27)) * 0x94d049bb133111ebULL;
  return value ^ (value >> 31);
}

// Random draws whose sequence depends only on the seed: std::mt19937_64's output is fixed by the standard, and
// the bounded draw is written here (rejection sampling) rather than left to a library's distribution.
class random_source {
public:
  explicit random_source(std::uint64_t seed) : generator_(seed) {}

  // Uniform in [0, bound); bound > 0.
  std::uint64_t below(std::uint64_t bound) {
    // Values under `threshold` would make the low residues more likely; drawing again removes the bias.
    std::uint64_t threshold = (0 - bound) % bound;
    for (;;) {
      auto value = generator_();
      if (value >= threshold)
        return value % bound;
    }
  }

  bool chance_per_mille(std::uint64_t per_mille) { return below(1000) < per_mille; }

  // A catalog index, skewed towards the front: index i has weight 1 / (i + 1).
  std::size_t pick_product() {
    static const auto weights = [] {
      std::array<std::uint64_t, catalog.size()> cumulative{};
      std::uint64_t total = 0;
      for (std::size_t index = 0; index < catalog.size(); ++index)
        cumulative[index] = total += 720720 / (index + 1);
      return cumulative;
    }();
    auto draw = below(weights.back());
    return static_cast<std::size_t>(std::upper_bound(weights.begin(), weights.end(), draw) - weights.begin());
  }

private:
  std::mt19937_64 generator_;
};

// How a customer's order ends once its items are in.
enum class ending { ship, cancel, leave_open };

// The ways to break a rule on purpose; each is chosen only where it applies, so its rejection is certain.
enum class violation {
  zero_quantity,       // add_item with qty 0: invalid_quantity
  excessive_quantity,  // add_item with qty 1001: invalid_quantity
  non_positive_price,  // add_item with a unit price <= 0: invalid_unit_price
  price_mismatch,      // add_item of a held sku at another price: unit_price_mismatch
  remove_missing_sku,  // remove_item of a sku the order does not hold: item_not_in_order
  ship_empty,          // ship_order of an order with no lines: empty_order
  place_existing,      // place_order of an order already placed: order_already_placed
  ship_unplaced,       // ship_order of an order not placed yet: order_not_placed
  add_to_shipped,      // add_item to a shipped order: order_already_shipped
  cancel_shipped,      // cancel_order of a shipped order: order_already_shipped
  add_to_cancelled,    // add_item to a cancelled order: order_already_cancelled
};

// A command to send, and whether it breaks a rule on purpose.
struct planned_command {
  orders::command command;
  bool deliberate = false;
};

// One simulated customer: places its orders one after the other, fills each, then has the warehouse ship it,
// cancels it, or leaves it open. Its model of its orders changes only through the replies to its own commands,
// which no other client can influence: that is what keeps the commands deterministic under concurrency.
class customer {
public:
  customer(std::string id, std::vector<std::string> order_ids, std::uint64_t seed)
    : id_(std::move(id)), order_ids_(std::move(order_ids)), random_(seed) {
    begin_order();
  }

  const std::string& id() const { return id_; }
  random_source& random() { return random_; }
  const readmodels::customer_stats_view& expected_stats() const { return stats_; }

  // The customer's model of one of its orders (a default, unplaced order for an id it has not written).
  const orders::order& state_of(const std::string& order_id) {
    return states_[order_id];
  }

  // The next command, or nothing once every order is done.
  std::optional<planned_command> next() {
    while (cursor_ < order_ids_.size()) {
      const auto& order_id = order_ids_[cursor_];
      const auto& state = states_[order_id];
      if (random_.chance_per_mille(deliberate_per_mille))
        if (auto broken = break_a_rule())
          return broken;
      switch (state.status) {
      case orders::order_status::none:
        return planned_command{orders::place_order{order_id, id_}};
      case orders::order_status::placed:
        if (adds_done_ < adds_wanted_ || state.lines.empty()) {
          if (!removed_ && !state.lines.empty() && random_.chance_per_mille(remove_per_mille))
            return planned_command{orders::remove_item{order_id, held_sku(state)}};
          const auto& chosen = catalog[random_.pick_product()];
          return planned_command{orders::add_item{order_id, std::string{chosen.sku},
                                                  static_cast<std::int64_t>(1 + random_.below(5)),
                                                  chosen.unit_price_cents}};
        }
        if (ending_ == ending::ship)
          return planned_command{orders::ship_order{order_id}};
        if (ending_ == ending::cancel)
          return planned_command{orders::cancel_order{
            order_id, std::string{cancel_reasons[random_.below(cancel_reasons.size())]}}};
        advance(); // left open
        break;
      case orders::order_status::shipped:
      case orders::order_status::cancelled:
        advance();
        break;
      }
    }
    return std::nullopt;
  }

  // Folds a reply into the model: the events `predicted` (decide() on the model before the command) holds are
  // applied only if the engine accepted the command. Returns whether the reply is the predicted one.
  bool on_reply(const planned_command& sent, const cqrs::command_result& reply,
                const cqrs::decision<orders::event>& predicted) {
    bool as_predicted = predicted.accepted() ? reply.has_value()
                                             : !reply.has_value() && reply.error().code == predicted.error().code;
    if (reply && predicted.accepted()) {
      const auto order_id = std::string{orders::aggregate_id(sent.command)};
      auto& state = states_[order_id];
      for (const auto& event : predicted.events()) {
        state = orders::evolve(std::move(state), event);
        count(event);
      }
      if (!sent.deliberate && std::holds_alternative<orders::add_item>(sent.command))
        ++adds_done_;
      if (!sent.deliberate && std::holds_alternative<orders::remove_item>(sent.command))
        removed_ = true;
    }
    // A normal command refused against the prediction would be planned again and again: give the order up.
    if (!as_predicted && !sent.deliberate && cursor_ < order_ids_.size())
      advance();
    return as_predicted;
  }

private:
  void begin_order() {
    adds_done_ = 0;
    adds_wanted_ = 1 + random_.below(5);
    removed_ = false;
    auto roll = random_.below(100);
    ending_ = roll < 78 ? ending::ship : roll < 93 ? ending::cancel : ending::leave_open;
  }

  void advance() {
    const auto& order_id = order_ids_[cursor_];
    if (states_[order_id].status == orders::order_status::shipped)
      last_shipped_ = order_id;
    else if (states_[order_id].status == orders::order_status::cancelled)
      last_cancelled_ = order_id;
    ++cursor_;
    begin_order();
  }

  void count(const orders::event& event) {
    std::visit(cqrs::overloaded{
                 [&](const orders::order_placed&) { ++stats_.orders_placed; },
                 [&](const orders::order_shipped& shipped) {
                   ++stats_.orders_shipped;
                   stats_.spent_cents = orders::detail::saturating_add(stats_.spent_cents, shipped.total_cents);
                 },
                 [&](const orders::order_cancelled&) { ++stats_.orders_cancelled; },
                 [](const auto&) {},
               },
               event);
  }

  std::string held_sku(const orders::order& state) {
    auto line = state.lines.begin();
    std::advance(line, static_cast<std::ptrdiff_t>(random_.below(state.lines.size())));
    return line->first;
  }

  // A command that breaks a rule for certain, chosen among the violations that apply now; nothing if none does.
  std::optional<planned_command> break_a_rule() {
    const auto& order_id = order_ids_[cursor_];
    const auto& state = states_[order_id];
    std::array<violation, 11> possible{};
    std::size_t count = 0;
    if (state.status == orders::order_status::none)
      possible[count++] = violation::ship_unplaced;
    if (state.status == orders::order_status::placed) {
      for (auto kind : {violation::zero_quantity, violation::excessive_quantity, violation::non_positive_price,
                        violation::remove_missing_sku, violation::place_existing})
        possible[count++] = kind;
      possible[count++] = state.lines.empty() ? violation::ship_empty : violation::price_mismatch;
    }
    if (last_shipped_) {
      possible[count++] = violation::add_to_shipped;
      possible[count++] = violation::cancel_shipped;
    }
    if (last_cancelled_)
      possible[count++] = violation::add_to_cancelled;
    if (count == 0)
      return std::nullopt;
    const auto& chosen = catalog[random_.pick_product()];
    auto sku = std::string{chosen.sku};
    auto broken = [](orders::command command) { return planned_command{std::move(command), true}; };
    switch (possible[random_.below(count)]) {
    case violation::zero_quantity:
      return broken(orders::add_item{order_id, sku, 0, chosen.unit_price_cents});
    case violation::excessive_quantity:
      return broken(orders::add_item{order_id, sku, orders::max_quantity + 1, chosen.unit_price_cents});
    case violation::non_positive_price:
      return broken(orders::add_item{order_id, sku, 1, -static_cast<std::int64_t>(random_.below(500))});
    case violation::price_mismatch: {
      auto held = held_sku(state);
      auto price = state.lines.find(held)->second.unit_price_cents + 1 + static_cast<std::int64_t>(random_.below(50));
      return broken(orders::add_item{order_id, held, 1, price});
    }
    case violation::remove_missing_sku:
      return broken(orders::remove_item{order_id, "discontinued-" + sku});
    case violation::ship_empty:
    case violation::ship_unplaced:
      return broken(orders::ship_order{order_id});
    case violation::place_existing:
      return broken(orders::place_order{order_id, id_});
    case violation::add_to_shipped:
      return broken(orders::add_item{*last_shipped_, sku, 1, chosen.unit_price_cents});
    case violation::cancel_shipped:
      return broken(orders::cancel_order{*last_shipped_, "too late"});
    case violation::add_to_cancelled:
      return broken(orders::add_item{*last_cancelled_, sku, 1, chosen.unit_price_cents});
    }
    return std::nullopt;
  }

  std::string id_;
  std::vector<std::string> order_ids_;
  random_source random_;
  std::map<std::string, orders::order, std::less<>> states_;
  readmodels::customer_stats_view stats_;
  std::size_t cursor_ = 0;
  std::uint64_t adds_wanted_ = 0;
  std::uint64_t adds_done_ = 0;
  bool removed_ = false;
  ending ending_ = ending::ship;
  std::optional<std::string> last_shipped_;
  std::optional<std::string> last_cancelled_;
};

// "c-0042" with as many digits as the largest number needs.
std::string numbered(std::string_view prefix, std::size_t number, std::size_t largest) {
  auto digits = std::to_string(largest).size();
  auto text = std::to_string(number);
  return std::string{prefix} + std::string(digits - std::min(digits, text.size()), '0') + text;
}

std::vector<customer> make_customers(const simulation_options& options) {
  std::vector<std::vector<std::string>> order_ids(options.customers);
  for (std::size_t order = 0; order < options.orders; ++order)
    order_ids[order % options.customers].push_back(numbered(options.id_prefix + "o-", order + 1, options.orders));
  std::vector<customer> customers;
  customers.reserve(options.customers);
  for (std::size_t index = 0; index < options.customers; ++index)
    customers.emplace_back(numbered(options.id_prefix + "c-", index + 1, options.customers), std::move(order_ids[index]),
                           mix(options.seed ^ mix(index)));
  return customers;
}

// Counters every client adds to and the monitor reads while the run goes on.
struct shared_counters {
  std::atomic<std::uint64_t> commands{0};
  std::atomic<std::uint64_t> accepted{0};
  std::atomic<std::uint64_t> rejected{0};
  std::atomic<std::uint64_t> deliberate{0};
  std::atomic<std::uint64_t> unexpected_replies{0};
  std::atomic<std::uint64_t> queries{0};
  std::atomic<std::uint64_t> any_reads{0};
  std::atomic<std::uint64_t> stale_reads{0};
  std::atomic<std::uint64_t> ryw_reads{0};
  std::atomic<std::uint64_t> ryw_violations{0};
  std::atomic<std::uint64_t> failed_queries{0};
  std::atomic<bool> out_of_time{false};
  std::atomic<bool> interrupted{false};
};

// What one client gathers on its own and hands over once it is done.
struct client_tally {
  std::map<std::string, std::uint64_t> rejections_by_code;
  std::vector<std::uint64_t> lag_samples_us;
  std::exception_ptr failure;
};

// A reply (to a command or a query) with the moment the engine delivered it.
template <class Reply>
struct timed {
  Reply reply;
  clock::time_point at;
};

std::future<timed<cqrs::command_result>> send_timed(cqrs::engine& engine, orders::command command) {
  auto promise = std::make_shared<std::promise<timed<cqrs::command_result>>>();
  auto future = promise->get_future();
  engine.send(std::move(command), [promise](cqrs::command_result reply) {
    promise->set_value({std::move(reply), clock::now()});
  });
  return future;
}

template <class Query>
auto query_timed(cqrs::engine& engine, Query question, cqrs::consistency wanted) {
  using reply = cqrs::query_result<cqrs::answer_type<Query>>;
  auto promise = std::make_shared<std::promise<timed<reply>>>();
  auto future = promise->get_future();
  engine.query(
    std::move(question), [promise](reply answer) { promise->set_value({std::move(answer), clock::now()}); }, wanted);
  return future;
}

// One client thread: sends its customers' commands round robin, one at a time, and reads some of them back.
class client {
public:
  client(cqrs::engine& engine, std::vector<customer*> customers, std::optional<clock::time_point> deadline,
         const std::atomic<bool>* interrupt, shared_counters& counters, client_tally& tally)
    : engine_(engine), customers_(std::move(customers)), deadline_(deadline), interrupt_(interrupt),
      counters_(counters), tally_(tally) {}

  void run() {
    while (!customers_.empty()) {
      for (std::size_t index = 0; index < customers_.size();) {
        if (deadline_ && clock::now() >= *deadline_) {
          counters_.out_of_time.store(true);
          return;
        }
        if (interrupt_ && interrupt_->load(std::memory_order_relaxed)) {
          counters_.interrupted.store(true);
          return;
        }
        auto planned = customers_[index]->next();
        if (!planned) {
          customers_.erase(customers_.begin() + static_cast<std::ptrdiff_t>(index));
          continue;
        }
        step(*customers_[index], *planned);
        ++index;
      }
    }
  }

private:
  void step(customer& buyer, const planned_command& planned) {
    const auto order_id = std::string{orders::aggregate_id(planned.command)};
    auto predicted = orders::decide(buyer.state_of(order_id), planned.command);
    auto [reply, replied_at] = send_timed(engine_, planned.command).get();
    counters_.commands.fetch_add(1, std::memory_order_relaxed);
    if (planned.deliberate)
      counters_.deliberate.fetch_add(1, std::memory_order_relaxed);
    if (reply) {
      counters_.accepted.fetch_add(1, std::memory_order_relaxed);
    } else {
      counters_.rejected.fetch_add(1, std::memory_order_relaxed);
      ++tally_.rejections_by_code[reply.error().code];
    }
    if (!buyer.on_reply(planned, reply, predicted))
      counters_.unexpected_replies.fetch_add(1, std::memory_order_relaxed);

    // Drawn after every command, whatever the reply, so which reads are made depends on the seed alone.
    bool read = buyer.random().below(100) < read_percent;
    bool read_your_writes = buyer.random().below(2) == 1;
    bool read_customer = buyer.random().below(2) == 1;
    if (!reply || !read)
      return;
    bool changes_customer = std::holds_alternative<orders::place_order>(planned.command)
                            || std::holds_alternative<orders::ship_order>(planned.command)
                            || std::holds_alternative<orders::cancel_order>(planned.command);
    auto wanted = read_your_writes ? cqrs::at_least(reply->position) : cqrs::consistency::any();
    if (changes_customer && read_customer)
      read_back(query_timed(engine_, readmodels::get_customer_stats{buyer.id()}, wanted).get(), replied_at,
                read_your_writes, std::optional{buyer.expected_stats()});
    else
      read_back(query_timed(engine_, readmodels::get_order_summary{order_id}, wanted).get(), replied_at,
                read_your_writes, std::optional{expected_summary(buyer.state_of(order_id), reply->position)});
  }

  // Compares an answer with what the client's own writes make it expect. The client is the only writer of its
  // customers and orders and has nothing else in flight, so any difference means the answer missed its write.
  template <class Answer, class Expected>
  void read_back(const timed<cqrs::query_result<Answer>>& answer, clock::time_point replied_at,
                 bool read_your_writes, const Expected& expected) {
    counters_.queries.fetch_add(1, std::memory_order_relaxed);
    (read_your_writes ? counters_.ryw_reads : counters_.any_reads).fetch_add(1, std::memory_order_relaxed);
    if (!answer.reply) {
      counters_.failed_queries.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    bool missed = !(*answer.reply == expected);
    if (read_your_writes) {
      auto lag = std::chrono::duration_cast<std::chrono::microseconds>(answer.at - replied_at).count();
      tally_.lag_samples_us.push_back(static_cast<std::uint64_t>(std::max<std::int64_t>(lag, 0)));
      if (missed)
        counters_.ryw_violations.fetch_add(1, std::memory_order_relaxed);
    } else if (missed) {
      counters_.stale_reads.fetch_add(1, std::memory_order_relaxed);
    }
  }

  cqrs::engine& engine_;
  std::vector<customer*> customers_;
  std::optional<clock::time_point> deadline_;
  const std::atomic<bool>* interrupt_;
  shared_counters& counters_;
  client_tally& tally_;
};

// The display timer: wakes a few times a second (a condition variable's wait_for, so that stop() ends it at
// once), samples the counters and the projections' lag, and prints a status line.
class monitor {
public:
  monitor(const simulation_options& options, const cqrs::engine& engine, const shared_counters& counters)
    : options_(options), engine_(engine), counters_(counters), start_(clock::now()) {
    for (const auto& status : engine_.statuses())
      peaks_.push_back(projection_peak{status.name, 0});
    if (auto* out = output(); out && options_.progress == progress_style::live_line) {
      *out << "lag = events each read model is behind the log:";
      for (const auto& peak : peaks_)
        *out << ' ' << peak.name << (&peak == &peaks_.back() ? "\n" : " /");
      out->flush();
    }
    thread_ = std::thread{[this] { run(); }};
  }

  ~monitor() { stop(); }

  // Stops the timer and prints a last status line.
  void stop() {
    {
      std::lock_guard lock{mutex_};
      if (stopping_)
        return;
      stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
    tick();
    if (auto* out = output(); out && options_.progress == progress_style::live_line) {
      *out << '\n';
      out->flush();
    }
  }

  const std::vector<projection_peak>& peaks() const { return peaks_; }

private:
  std::ostream* output() const {
    return options_.progress == progress_style::none ? nullptr : options_.progress_output;
  }

  void run() {
    auto interval = options_.progress == progress_style::periodic_lines ? std::chrono::milliseconds{1000}
                                                                        : std::chrono::milliseconds{250};
    std::unique_lock lock{mutex_};
    while (!wake_.wait_for(lock, interval, [this] { return stopping_; })) {
      lock.unlock();
      tick();
      lock.lock();
    }
  }

  void tick() {
    auto now = clock::now();
    auto statuses = engine_.statuses();
    for (std::size_t index = 0; index < statuses.size() && index < peaks_.size(); ++index)
      peaks_[index].lag = std::max(peaks_[index].lag, statuses[index].lag);
    auto* out = output();
    if (!out)
      return;
    auto commands = counters_.commands.load();
    auto seconds = std::chrono::duration<double>(now - last_tick_at_.value_or(start_)).count();
    auto rate = seconds > 0 ? static_cast<double>(commands - last_commands_) / seconds : 0.0;
    last_tick_at_ = now;
    last_commands_ = commands;
    auto elapsed = std::chrono::duration<double>(now - start_).count();
    std::ostringstream line;
    line << std::fixed << std::setprecision(1);
    if (options_.progress == progress_style::live_line) {
      line << elapsed << "s  " << std::setprecision(0) << rate << " commands/s  accepted " << counters_.accepted
           << "  rejected " << counters_.rejected << "  events " << engine_.head() << "  lag ";
      for (std::size_t index = 0; index < statuses.size(); ++index)
        line << (index ? "/" : "") << statuses[index].lag;
      line << "  stale reads " << counters_.stale_reads << " of " << counters_.any_reads << " any";
      auto text = line.str();
      if (options_.line_width > 1 && text.size() > options_.line_width - 1)
        text.resize(options_.line_width - 1);
      // Back to the line's start, rewrite it, and erase what a longer previous line left behind.
      *out << '\r' << text << "\x1b[K";
    } else {
      line << '[' << elapsed << "s] commands " << commands << " (" << std::setprecision(0) << rate
           << "/s), accepted " << counters_.accepted << ", rejected " << counters_.rejected << ", events "
           << engine_.head() << ", queries " << counters_.queries << ", stale reads " << counters_.stale_reads
           << " of " << counters_.any_reads << " any; lag";
      for (std::size_t index = 0; index < statuses.size(); ++index)
        line << (index ? ", " : " ") << statuses[index].name << ' ' << statuses[index].lag;
      *out << line.str() << '\n';
    }
    out->flush();
  }

  const simulation_options& options_;
  const cqrs::engine& engine_;
  const shared_counters& counters_;
  const clock::time_point start_;
  std::vector<projection_peak> peaks_;
  std::optional<clock::time_point> last_tick_at_;
  std::uint64_t last_commands_ = 0;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

} // namespace

std::optional<std::string> check(const simulation_options& options) {
  if (options.customers < 1 || options.customers > 1'000'000)
    return "--customers must be 1..1000000, got " + std::to_string(options.customers);
  if (options.orders > 1'000'000)
    return "--orders must be 0..1000000, got " + std::to_string(options.orders);
  if (options.engine_threads < 1 || options.engine_threads > 256)
    return "--threads must be 1..256, got " + std::to_string(options.engine_threads);
  if (options.clients < 1 || options.clients > 256)
    return "--clients must be 1..256, got " + std::to_string(options.clients);
  if (options.clients > options.customers)
    return "--clients (" + std::to_string(options.clients) + ") must not exceed --customers ("
           + std::to_string(options.customers) + "): each client owns at least one customer";
  if (options.duration.count() < 0)
    return std::string{"--duration-s must not be negative"};
  if (options.progress != progress_style::none && !options.progress_output)
    return std::string{"progress needs an output stream"};
  return std::nullopt;
}

lag_statistics summarize_lags(std::vector<std::uint64_t> samples_us) {
  lag_statistics statistics;
  statistics.samples = samples_us.size();
  if (samples_us.empty())
    return statistics;
  std::sort(samples_us.begin(), samples_us.end());
  // Nearest rank: the smallest sample with at least `percent`% of the samples at or below it.
  auto percentile = [&](std::size_t percent) {
    auto rank = (percent * samples_us.size() + 99) / 100;
    return samples_us[std::max<std::size_t>(rank, 1) - 1];
  };
  statistics.p50_us = percentile(50);
  statistics.p90_us = percentile(90);
  statistics.p99_us = percentile(99);
  statistics.max_us = samples_us.back();
  return statistics;
}

readmodels::order_summary expected_summary(const orders::order& state, cqrs::log_position last_position) {
  readmodels::order_summary summary;
  summary.status = state.status;
  summary.customer_id = state.customer_id;
  summary.lines = state.lines;
  summary.item_count = orders::item_count(state.lines);
  summary.total_cents = orders::total_cents(state.lines);
  summary.cancel_reason = state.cancel_reason;
  summary.last_position = last_position;
  return summary;
}

bool simulation_result::passed() const {
  return !failure().has_value();
}

std::optional<std::string> simulation_result::failure() const {
  if (auto difference = verification.first_difference())
    return difference;
  if (ryw_violations > 0)
    return std::to_string(ryw_violations) + " read-your-writes reads missed the client's own write";
  if (unexpected_replies > 0)
    return std::to_string(unexpected_replies) + " replies differ from what the domain rules predict";
  if (failed_queries > 0)
    return std::to_string(failed_queries) + " queries got no answer";
  return std::nullopt;
}

simulation_result run_simulation(const simulation_options& options) {
  if (auto problem = check(options))
    throw std::invalid_argument(*problem);
  simulation_result result;
  result.options = options;

  auto engine_started = clock::now();
  cqrs::engine engine{cqrs::options{.store = options.store, .tuning = {.threads = options.engine_threads}}};
  add_order_domain(engine);
  auto display = options.progress == progress_style::live_line        ? rebuild_display::live_line
                 : options.progress == progress_style::periodic_lines ? rebuild_display::lines
                                                                      : rebuild_display::none;
  result.recovery = catch_up_read_models(engine, engine_started, display, options.progress_output);
  if (result.recovery.error)
    throw std::runtime_error(*result.recovery.error);

  auto customers = make_customers(options);
  std::vector<std::vector<customer*>> owned(options.clients);
  for (std::size_t index = 0; index < customers.size(); ++index)
    owned[index % options.clients].push_back(&customers[index]);

  shared_counters counters;
  std::vector<client_tally> tallies(options.clients);
  auto start = clock::now();
  std::optional<clock::time_point> deadline;
  if (options.duration.count() > 0)
    deadline = start + options.duration;
  {
    monitor display{options, engine, counters};
    std::vector<std::thread> threads;
    for (std::size_t index = 0; index < options.clients; ++index)
      threads.emplace_back([&, index] {
        try {
          client{engine, std::move(owned[index]), deadline, options.interrupt, counters, tallies[index]}.run();
        } catch (...) {
          tallies[index].failure = std::current_exception();
        }
      });
    for (auto& thread : threads)
      thread.join();
    result.elapsed = clock::now() - start;
    display.stop();
    result.peak_lags = display.peaks();
  }
  for (auto& tally : tallies)
    if (tally.failure)
      std::rethrow_exception(tally.failure);

  result.commands = counters.commands;
  result.accepted = counters.accepted;
  result.rejected = counters.rejected;
  result.deliberate = counters.deliberate;
  result.unexpected_replies = counters.unexpected_replies;
  result.queries = counters.queries;
  result.any_reads = counters.any_reads;
  result.stale_reads = counters.stale_reads;
  result.ryw_reads = counters.ryw_reads;
  result.ryw_violations = counters.ryw_violations;
  result.failed_queries = counters.failed_queries;
  result.stopped_by_duration = counters.out_of_time;
  result.stopped_by_signal = counters.interrupted;
  std::vector<std::uint64_t> lag_samples;
  for (auto& tally : tallies) {
    for (const auto& [code, count] : tally.rejections_by_code)
      result.rejections_by_code[code] += count;
    lag_samples.insert(lag_samples.end(), tally.lag_samples_us.begin(), tally.lag_samples_us.end());
  }
  result.visibility_lag = summarize_lags(std::move(lag_samples));

  auto verified = verify_engine(engine);
  result.verification = std::move(verified.report);
  result.read_models = std::move(verified.copies);
  if (result.read_models) {
    result.exact_digest = fingerprint(*result.read_models);
    result.digest = fingerprint(without_commit_order(*result.read_models));
  }
  result.events = engine.head();
  result.store = engine.store();
  engine.shutdown();
  return result;
}

} // namespace demo
