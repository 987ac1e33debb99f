// The rest of the command surface. Options are declared so --help is accurate; a command
// without a run function says it is not built yet and exits 2.
#include "command.hpp"

namespace ticketflow::app {

std::vector<Command> plannedCommands() {
  const auto cfg = configOption();
  const std::string pipeline = "issue 7: pipeline";
  return {
      {{"run all", "run intake, every tier pool and the result writers in one process", "", 0, 0, {cfg}}, {}, pipeline},
      {{"run intake", "run the intake role", "", 0, 0, {cfg}}, {}, pipeline},
      {{"run results", "run the result writers", "", 0, 0, {cfg}}, {}, pipeline},
      {{"submit", "produce tickets from a JSONL or CSV file", "FILE", 1, 1, {cfg, {"topic", "T", "target topic (default: inbound)", ""}}},
       {}, pipeline},
      {{"triage", "batch-triage a backlog file", "FILE", 1, 1,
        {cfg, {"dry-run", "", "classify and price locally, no model calls", ""},
         {"report", "FILE", "write a self-contained HTML report", ""},
         {"column-map", "MAP", "CSV columns, e.g. body=description,id=number", ""}}},
       {}, pipeline},
      {{"bench pipeline", "benchmark the whole pipeline", "", 0, 0, {}}, {}, pipeline},
  };
}

}  // namespace ticketflow::app
