// The rest of the command surface. Options are declared so --help is accurate; a command
// without a run function says it is not built yet and exits 2.
#include "command.hpp"

namespace ticketflow::app {

std::vector<Command> plannedCommands() {
  const auto cfg = configOption();
  const std::string tier = "issue 5: tier pools";
  const std::string redis = "issue 6: Redis components";
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
      {{"budget show", "print spend against caps per tenant, tier and period", "", 0, 0, {cfg}}, {}, redis},
      {{"budget set", "set a budget cap", "", 0, 0, {cfg}}, {}, redis},
      {{"budget reset", "reset spend counters", "", 0, 0, {cfg}}, {}, redis},
      {{"cache stats", "print semantic cache statistics", "", 0, 0, {cfg}}, {}, redis},
      {{"cache purge", "purge cache entries by tenant, category or age", "", 0, 0, {cfg}}, {}, redis},
      {{"cache eval", "replay a labelled stream and measure hit rate and agreement", "", 0, 0,
        {cfg, {"data", "FILE", "labelled tickets", ""}}},
       {}, redis},
      {{"bench tier", "benchmark the tier role against the simulator", "", 0, 0, {}}, {}, tier},
      {{"bench cache", "benchmark cache lookups and inserts", "", 0, 0, {}}, {}, redis},
      {{"bench ledger", "benchmark budget reserve+settle", "", 0, 0, {}}, {}, redis},
      {{"bench pipeline", "benchmark the whole pipeline", "", 0, 0, {}}, {}, pipeline},
  };
}

}  // namespace ticketflow::app
