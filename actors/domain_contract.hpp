// The contract a host's domain meets: cqrs::aggregate<A> and cqrs::projection<P>, checked where they are
// registered, so that a mistake reads as the one requirement it breaks rather than a template backtrace.
#pragma once

#include "actors/decision.hpp"
#include "actors/envelope.hpp"

#include <concepts>
#include <string_view>
#include <type_traits>
#include <variant>

namespace cqrs {

namespace contract {

template <class T>
struct is_variant : std::false_type {};
template <class... Alternatives>
struct is_variant<std::variant<Alternatives...>> : std::true_type {};

/// A type with a stable, versioned name: `static constexpr std::string_view type_name = "OrderPlaced.v1";`.
template <class T>
concept named_type = requires {
  { T::type_name } -> std::convertible_to<std::string_view>;
};

template <class Variant>
struct all_named : std::false_type {};
template <class... Alternatives>
struct all_named<std::variant<Alternatives...>> : std::bool_constant<(named_type<Alternatives> && ...)> {};

/// A std::variant of command structs (or of event structs that each name their type).
template <class T>
concept command_variant = is_variant<T>::value;
template <class T>
concept event_variant = is_variant<T>::value && all_named<T>::value;

/// The three free functions an aggregate's header declares, found by argument-dependent lookup.
template <class A>
concept decides_and_evolves = requires(const A& state, A value, const typename A::command& command,
                                       const typename A::event& event) {
  { aggregate_id(command) } -> std::convertible_to<std::string_view>;
  { decide(state, command) } -> std::convertible_to<decision<typename A::event>>;
  { evolve(std::move(value), event) } -> std::convertible_to<A>;
};

template <class P, class Event>
concept applies = requires(P& model, const envelope& meta, const Event& event) { model.apply(meta, event); };

template <class P, class Subscription>
struct applies_each : std::false_type {};
template <class P, class... Events>
struct applies_each<P, events_of<Events...>> : std::bool_constant<(applies<P, Events> && ...)> {};

} // namespace contract

/// An aggregate: a default-constructible, movable state struct with `using command = std::variant<...>`,
/// `using event = std::variant<...>` (each event naming its `type_name`), a `static constexpr std::string_view
/// type_name`, and free functions `aggregate_id(const command&)`, `decide(const A&, const command&)` returning
/// `cqrs::decision<event>`, and `evolve(A, const event&)` returning the next state.
template <class A>
concept aggregate = std::default_initializable<A> && std::move_constructible<A> && std::copy_constructible<A>
                    && contract::named_type<A> && contract::command_variant<typename A::command>
                    && contract::event_variant<typename A::event> && contract::decides_and_evolves<A>;

/// A projection: a default-constructible read model with `static constexpr std::string_view name`,
/// `using subscribes_to = cqrs::events_of<...>`, and `apply(const cqrs::envelope&, const Event&)` for each
/// event variant it subscribes to.
template <class P>
concept projection = std::default_initializable<P> && requires {
  { P::name } -> std::convertible_to<std::string_view>;
  typename P::subscribes_to;
} && contract::applies_each<P, typename P::subscribes_to>::value;

} // namespace cqrs
