// The rest of the command surface. Options are declared so --help is accurate; a command
// without a run function says it is not built yet and exits 2.
#include "command.hpp"

namespace ticketflow::app {

std::vector<Command> plannedCommands() {
  const auto cfg = configOption();
  const std::string pipeline = "issue 7: pipeline";
  return {
      {{"bench pipeline", "benchmark the whole pipeline", "", 0, 0, {}}, {}, pipeline},
  };
}

}  // namespace ticketflow::app
