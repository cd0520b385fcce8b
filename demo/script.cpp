// Reads script lines with a bounded reader, runs them on the engine, and writes the JSON replies.
#include "demo/script.hpp"

#include "actors/overloaded.hpp"
#include "domain/order_json.hpp"

#include <boost/json.hpp>

namespace demo {
namespace {

bool is_blank(std::string_view text) {
  return text.find_first_not_of(" \t") == std::string_view::npos;
}

// Runs one script, line by line.
class script_runner {
public:
  script_runner(std::ostream& out, cqrs::engine& engine) : out_(out), engine_(engine) {}

  void run(const script_line& line) {
    ++summary_.lines;
    if (line.too_long) {
      fail(line.number, "the line is " + std::to_string(line.length) + " bytes, over the limit of "
                          + std::to_string(order_json::max_line_bytes) + " bytes; skipped");
      return;
    }
    if (is_blank(line.text)) {
      ++summary_.blank;
      return;
    }
    auto parsed = order_json::parse_line(line.text);
    if (!parsed) {
      fail(line.number, parsed.error());
      return;
    }
    std::visit(cqrs::overloaded{
                 [&](const orders::command& command) { send(line.number, command); },
                 [&](const order_json::query_request& request) { ask(line.number, request); },
               },
               *parsed);
  }

  const script_summary& summary() const { return summary_; }

private:
  void send(std::uint64_t number, const orders::command& command) {
    ++summary_.commands;
    boost::json::object reply{{"line", number},
                              {"type", order_json::command_name(command)},
                              {"order_id", orders::aggregate_id(command)}};
    auto result = engine_.send(command).get();
    reply["accepted"] = result.has_value();
    if (result) {
      ++summary_.accepted;
      summary_.last_position = std::max(summary_.last_position, result->position);
      reply["version"] = result->version;
      reply["position"] = result->position;
    } else {
      ++summary_.rejected;
      reply["code"] = result.error().code;
      reply["message"] = result.error().message;
    }
    write(reply);
  }

  void ask(std::uint64_t number, const order_json::query_request& request) {
    ++summary_.queries;
    boost::json::object reply{{"line", number},
                              {"query", order_json::query_name(request.question)},
                              {"consistency", order_json::to_string(request.consistency)}};
    auto wanted = request.consistency == order_json::read_consistency::any ? cqrs::consistency::any()
                                                                            : cqrs::at_least(summary_.last_position);
    std::visit(
      [&](const auto& question) {
        auto answer = engine_.query(question, wanted).get();
        if (answer) {
          reply["answer"] = order_json::answer_to_json(*answer);
        } else {
          ++summary_.failed_queries;
          reply["error"] = boost::json::object{{"code", answer.error().code},
                                               {"message", answer.error().message}};
        }
      },
      request.question);
    write(reply);
  }

  void fail(std::uint64_t number, const std::string& problem) {
    ++summary_.errors;
    write(boost::json::object{{"line", number}, {"error", "line " + std::to_string(number) + ": " + problem}});
  }

  void write(const boost::json::object& reply) {
    // Flushed per line, so a reply is there as soon as its line ran (for a script fed interactively).
    out_ << boost::json::serialize(reply) << '\n';
    out_.flush();
  }

  std::ostream& out_;
  cqrs::engine& engine_;
  script_summary summary_;
};

} // namespace

bounded_line_reader::bounded_line_reader(std::istream& in, std::size_t limit) : in_(in), limit_(limit) {}

std::optional<script_line> bounded_line_reader::next() {
  auto* buffer = in_.rdbuf();
  if (!buffer)
    return std::nullopt;
  using traits = std::istream::traits_type;
  if (traits::eq_int_type(buffer->sgetc(), traits::eof())) {
    in_.setstate(std::ios::eofbit);
    return std::nullopt;
  }
  script_line line;
  line.number = ++number_;
  for (auto next = buffer->sbumpc(); !traits::eq_int_type(next, traits::eof()); next = buffer->sbumpc()) {
    auto character = traits::to_char_type(next);
    if (character == '\n')
      break;
    ++line.length;
    if (line.length <= limit_ + 1)
      line.text.push_back(character);
  }
  // A carriage return before the line feed belongs to the line break (a file written on Windows).
  if (!line.text.empty() && line.text.back() == '\r' && line.length <= limit_ + 1) {
    line.text.pop_back();
    --line.length;
  }
  if (line.length > limit_) {
    line.too_long = true;
    line.text.clear();
    line.text.shrink_to_fit();
  }
  return line;
}

script_summary run_script(std::istream& in, std::ostream& out, cqrs::engine& engine) {
  script_runner runner{out, engine};
  bounded_line_reader reader{in, order_json::max_line_bytes};
  while (auto line = reader.next())
    runner.run(*line);
  return runner.summary();
}

} // namespace demo
