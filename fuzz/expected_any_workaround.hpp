// Force-included in the fuzz build's store sources: clang 16 with libstdc++ 12 cannot decide whether
// std::expected<std::any, std::string> (what event codecs decode to) is nothrow-move-constructible when it first
// asks inside another constraint check: std::any's constructor asks the same of expected's converting constructor,
// which asks again ("satisfaction of constraint depends on itself"). Asked once here, at namespace scope, the answer
// is settled before any of that, and the rest compiles as with g++.
#pragma once

#include <any>
#include <expected>
#include <string>
#include <type_traits>

static_assert(std::is_nothrow_move_constructible_v<std::expected<std::any, std::string>>);
