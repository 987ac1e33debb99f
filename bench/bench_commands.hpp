#pragma once
// `ticketflow bench ...`: the benchmarks, a library of their own (the roles never link it). Each
// prints figures; README.md's performance section quotes them with their commands.
#include <vector>

#include "cli/command.hpp"

namespace ticketflow::app {

std::vector<Command> benchCommands();

// Each area's benchmarks.
std::vector<Command> stageBenchCommands();       // bench stage
std::vector<Command> tierBenchCommands();        // bench tier
std::vector<Command> pipelineBenchCommands();    // bench pipeline
std::vector<Command> chaosBenchCommands();       // bench chaos
std::vector<Command> redisBenchCommands();       // bench cache, bench ledger
std::vector<Command> classifierBenchCommands();  // bench classifier

}  // namespace ticketflow::app
