#include "bench_commands.hpp"

namespace ticketflow::app {

std::vector<Command> benchCommands() {
  std::vector<Command> all;
  for (auto area : {classifierBenchCommands, redisBenchCommands, stageBenchCommands, tierBenchCommands,
                    pipelineBenchCommands, chaosBenchCommands})
    for (auto& c : area()) all.push_back(std::move(c));
  return all;
}

}  // namespace ticketflow::app
