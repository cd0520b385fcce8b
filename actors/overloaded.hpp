// The `overloaded` helper for std::visit: one lambda per variant alternative.
#pragma once

namespace cqrs {

template <class... Handlers>
struct overloaded : Handlers... {
  using Handlers::operator()...;
};

} // namespace cqrs
