// Script mode: runs order commands and queries written one JSON object per line, answering each with a JSON line.
#pragma once

#include "actors/engine.hpp"

#include <cstddef>
#include <cstdint>
#include <istream>
#include <optional>
#include <ostream>
#include <string>

namespace demo {

/// One line as bounded_line_reader read it.
struct script_line {
  /// 1 for the first line.
  std::uint64_t number = 0;
  /// The line without its line break (and without a trailing carriage return); empty when too long.
  std::string text;
  /// Length of the whole line in bytes, also when it was too long to keep.
  std::size_t length = 0;
  bool too_long = false;
};

/// Reads lines without ever holding more than `limit` bytes of one: the rest of a longer line is read past and
/// dropped, and the line comes back marked too long. A last line without a line break still counts.
class bounded_line_reader {
public:
  bounded_line_reader(std::istream& in, std::size_t limit);

  /// The next line, or nothing at the end of the input.
  std::optional<script_line> next();

private:
  std::istream& in_;
  std::size_t limit_;
  std::uint64_t number_ = 0;
};

/// What a script run did.
struct script_summary {
  /// Lines read, blank ones included.
  std::uint64_t lines = 0;
  /// Blank lines (nothing but spaces and tabs), skipped without a reply.
  std::uint64_t blank = 0;
  std::uint64_t commands = 0;
  std::uint64_t accepted = 0;
  std::uint64_t rejected = 0;
  std::uint64_t queries = 0;
  /// Queries the engine could not answer (a timeout, say).
  std::uint64_t failed_queries = 0;
  /// Lines answered with an error (malformed, unknown type, bad field, too long): none of them reached the engine.
  std::uint64_t errors = 0;
  /// Position of the last accepted command: what read-your-writes queries wait for.
  cqrs::log_position last_position = 0;
};

/// Reads commands and queries from `in`, one JSON object per line (order_json::parse_line's format), runs each on
/// `engine` (set up with add_order_domain) in order, waiting for each reply, and writes one JSON object per line
/// to `out`, every one with the input's "line" number:
///   {"line":1,"type":"PlaceOrder","order_id":"o-1","accepted":true,"version":1,"position":1}
///   {"line":2,"type":"AddItem","order_id":"o-1","accepted":false,"code":"invalid_quantity","message":"..."}
///   {"line":3,"query":"get_order_summary","consistency":"read_your_writes","answer":{...}}
///   {"line":4,"query":"top_products","consistency":"any","error":{"code":"timeout","message":"..."}}
///   {"line":5,"error":"line 5: malformed JSON: syntax error"}
/// A query waits by default until the read model has applied the script's last accepted command
/// (read-your-writes); "consistency":"any" answers at once. A bad line gets an error reply, sends nothing, and the
/// script goes on. Blank lines are skipped silently. Lines over order_json::max_line_bytes are refused unread.
script_summary run_script(std::istream& in, std::ostream& out, cqrs::engine& engine);

} // namespace demo
