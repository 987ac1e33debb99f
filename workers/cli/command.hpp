#pragma once
// The `ticketflow` command table. Each subcommand declares its options once (CommandSpec) and
// a run function; the dispatcher in main.cpp does --help, usage errors and exit codes.

#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ticketflow/classify/category_model.hpp"
#include "ticketflow/cli/args.hpp"
#include "ticketflow/config/config.hpp"
#include "ticketflow/redis/embedded_server.hpp"
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
// A URL as it may be printed: one with credentials is not.
std::string displayRedisUrl(const std::string& url);
// A pool on a private redis-server (benchmarks and evaluations that must not touch the configured one).
std::shared_ptr<redis::RedisPool> connectPrivate(const redis::EmbeddedRedisServer& server, int size);
// The category model --model names, or the configured one; loaded, or an exception naming why not.
std::string categoryModelPath(const cli::ParsedArgs& args, const Config& config);
classify::CategoryModel loadCategoryModel(const std::string& path);

// `v` with `digits` decimals, as the commands print figures.
inline std::string fixed(double v, int digits = 4) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::vector<Command> foundationCommands();  // broker, config check
std::vector<Command> pipelineCommands();    // submit, triage, demo
std::vector<Command> classifierCommands();  // train, eval, classify
std::vector<Command> budgetCommands();      // budget show|set|reset|release
std::vector<Command> cacheCommands();       // cache stats|purge|eval
std::vector<Command> routingCommands();     // eval routing, train escalation
std::vector<Command> simulatorCommands();   // sim
std::vector<Command> roleCommands();        // run tier
// `bench ...`: bench/bench_commands.hpp.

}  // namespace ticketflow::app
