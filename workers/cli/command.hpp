#pragma once
// The `ticketflow` command table. Each subcommand declares its options once (CommandSpec) and
// a run function; the dispatcher in main.cpp does --help, usage errors and exit codes.

#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ticketflow/cli/args.hpp"
#include "ticketflow/config/config.hpp"
#include "ticketflow/redis/feedback_store.hpp"
#include "ticketflow/redis/pool.hpp"

namespace ticketflow::app {

// Exit codes shared by every subcommand.
constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;  // bad arguments, or a subcommand not built yet

struct Command {
  cli::CommandSpec spec;
  std::function<int(const cli::ParsedArgs&)> run = {};  // empty: not built yet
  std::string not_built_reason = "";                    // shown when run is empty
};

// The --config option every long-running command takes.
cli::OptionSpec configOption();
// The configuration --config names, or the embedded one.
Config loadConfigOption(const cli::ParsedArgs& args);
// A pool on the configured Redis, checked with PING so an unreachable server is one clear line.
std::shared_ptr<redis::RedisPool> connectConfigured(const Config& config);
// The helpdesk feedback's labels in the configured Redis (`train --feedback`).
redis::FeedbackStore openFeedbackStore(const Config& config);

// `v` with `digits` decimals, as the commands print figures.
inline std::string fixed(double v, int digits = 4) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::vector<Command> foundationCommands();     // broker, config check
std::vector<Command> pipelineCommands();       // submit, triage, demo
std::vector<Command> classifierCommands();     // train, eval, classify, bench classifier
std::vector<Command> redisCommands();          // budget, cache, eval routing, train escalation, bench cache|ledger
std::vector<Command> simulatorCommands();      // sim
std::vector<Command> stageCommands();          // bench stage
std::vector<Command> roleCommands();           // run tier
std::vector<Command> tierBenchCommands();      // bench tier
std::vector<Command> pipelineBenchCommands();  // bench pipeline
std::vector<Command> chaosBenchCommands();     // bench chaos

}  // namespace ticketflow::app
