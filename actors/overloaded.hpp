// The `overloaded` helper for std::visit: one lambda per variant alternative.
#pragma once

namespace cqrs {

template <class... Handlers>
struct overloaded : Handlers... {
  using Handlers::operator()...;
};

// C++20 deduces this for an aggregate by itself; spelled out for compilers that do not yet (clang before 17).
template <class... Handlers>
overloaded(Handlers...) -> overloaded<Handlers...>;

} // namespace cqrs
