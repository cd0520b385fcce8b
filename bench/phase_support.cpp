// The checks of a phase's reply counts.
#include "bench/phase_support.hpp"

namespace bench::detail {

std::vector<std::string> count_problems(const std::string& phase_name, std::uint64_t sent, std::uint64_t invalid_sent,
                                        const outcome_tally& tally) {
  std::vector<std::string> problems;
  if (tally.accepted + tally.rejected + tally.overloaded != sent)
    problems.push_back(phase_name + ": " + std::to_string(sent) + " commands sent but " + std::to_string(tally.accepted)
                       + " accepted + " + std::to_string(tally.rejected) + " rejected + "
                       + std::to_string(tally.overloaded) + " overloaded came back");
  if (tally.invalid_answered != invalid_sent || tally.invalid_rejected + tally.invalid_overloaded != invalid_sent)
    problems.push_back(phase_name + ": " + std::to_string(invalid_sent) + " invalid commands sent, "
                       + std::to_string(tally.invalid_rejected) + " of them rejected and "
                       + std::to_string(tally.invalid_overloaded) + " refused as overloaded");
  if (tally.wrong_code != 0)
    problems.push_back(phase_name + ": " + std::to_string(tally.wrong_code)
                       + " invalid commands rejected for another rule than the one they break");
  if (tally.valid_rejected != 0)
    problems.push_back(phase_name + ": " + std::to_string(tally.valid_rejected) + " valid commands were rejected");
  return problems;
}

} // namespace bench::detail
