// What a domain's decide() returns: the events to append, or a rejection value.
#pragma once

#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace cqrs {

/// A broken business rule (or an engine refusal): a stable machine-readable code and a readable message.
struct rejection {
  std::string code;
  std::string message;

  bool operator==(const rejection&) const = default;
};

/// Builds a rejection; reads well in a decide() function: `return cqrs::reject("insufficient_funds", "...")`.
inline rejection reject(std::string code, std::string message) {
  return rejection{std::move(code), std::move(message)};
}

/// The outcome of decide(state, command): accepted with zero or more events, or rejected.
/// Implicitly built from one event, a vector of events, or a rejection, so decide() can `return` any of them.
template <class Event>
class [[nodiscard]] decision {
public:
  decision(Event event) : value_(std::vector<Event>{std::move(event)}) {}
  decision(std::vector<Event> events) : value_(std::move(events)) {}
  decision(rejection refusal) : value_(std::move(refusal)) {}

  template <class Alternative>
    requires std::is_constructible_v<Event, Alternative&&>
             && (!std::is_same_v<std::remove_cvref_t<Alternative>, Event>)
             && (!std::is_same_v<std::remove_cvref_t<Alternative>, rejection>)
  decision(Alternative&& event) : decision(Event{std::forward<Alternative>(event)}) {}

  bool accepted() const noexcept { return value_.index() == 0; }
  explicit operator bool() const noexcept { return accepted(); }

  const std::vector<Event>& events() const& { return std::get<0>(value_); }
  std::vector<Event>&& events() && { return std::get<0>(std::move(value_)); }
  const rejection& error() const& { return std::get<1>(value_); }

private:
  std::variant<std::vector<Event>, rejection> value_;
};

} // namespace cqrs
