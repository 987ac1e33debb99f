// ticketflow: one binary, one subcommand per role or tool.
#include <cstdio>
#include <iostream>

#include "bench_commands.hpp"
#include "command.hpp"
#include "ticketflow/config/config.hpp"
#include "ticketflow/core/signals.hpp"

namespace {

using ticketflow::app::Command;

std::vector<Command> allCommands() {
  auto commands = ticketflow::app::foundationCommands();
  for (auto& c : ticketflow::app::pipelineCommands()) commands.push_back(std::move(c));
  for (auto& c : ticketflow::app::classifierCommands()) commands.push_back(std::move(c));
  for (auto& c : ticketflow::app::budgetCommands()) commands.push_back(std::move(c));
  for (auto& c : ticketflow::app::cacheCommands()) commands.push_back(std::move(c));
  for (auto& c : ticketflow::app::routingCommands()) commands.push_back(std::move(c));
  for (auto& c : ticketflow::app::simulatorCommands()) commands.push_back(std::move(c));
  for (auto& c : ticketflow::app::roleCommands()) commands.push_back(std::move(c));
  for (auto& c : ticketflow::app::benchCommands()) commands.push_back(std::move(c));
  return commands;
}

void printOverview(const std::vector<Command>& commands, std::ostream& out) {
  out << "usage: ticketflow COMMAND [options]\n\n"
         "Triage IT-helpdesk tickets with language models, over Kafka and Redis.\n\ncommands:\n";
  for (const auto& c : commands) {
    std::string left = "  " + c.spec.name;
    if (left.size() < 22) left.resize(22, ' ');
    out << left << c.spec.summary << (c.run ? "" : " [not built yet]") << "\n";
  }
  out << "\n`ticketflow COMMAND --help` shows a command's options.\n";
}

}  // namespace

int main(int argc, char** argv) {
  ticketflow::blockTerminationSignals();  // before any thread starts
  const std::vector<std::string> args(argv + 1, argv + argc);
  const auto commands = allCommands();
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    printOverview(commands, args.empty() ? std::cerr : std::cout);
    return args.empty() ? ticketflow::app::kExitUsage : ticketflow::app::kExitOk;
  }
  if (args[0] == "--version") {
    std::cout << "ticketflow " << TICKETFLOW_VERSION << "\n";
    return 0;
  }
  // The longest run of words that names a command ("config check" before "config").
  const Command* command = nullptr;
  std::size_t words = 0;
  for (const auto& c : commands) {
    std::size_t n = 0;
    std::string name;
    while (n < args.size()) {
      name += (n ? " " : "") + args[n];
      ++n;
      if (name == c.spec.name && n > words) {
        command = &c;
        words = n;
      }
    }
  }
  if (!command) {
    // A family word alone ("config", "bench") lists its members.
    std::vector<const Command*> family;
    for (const auto& c : commands)
      if (c.spec.name.rfind(args[0] + " ", 0) == 0) family.push_back(&c);
    if (!family.empty()) {
      const bool help = args.size() > 1 && (args[1] == "--help" || args[1] == "-h");
      auto& out = help ? std::cout : std::cerr;
      if (!help && args.size() > 1) out << "ticketflow " << args[0] << ": unknown subcommand '" << args[1] << "'\n\n";
      out << "usage: ticketflow " << args[0] << " SUBCOMMAND [options]\n\nsubcommands:\n";
      for (const auto* c : family)
        out << "  " << c->spec.name << "  " << c->spec.summary << (c->run ? "" : " [not built yet]") << "\n";
      return help ? ticketflow::app::kExitOk : ticketflow::app::kExitUsage;
    }
    std::cerr << "ticketflow: unknown command '" << args[0] << "'\n\n";
    printOverview(commands, std::cerr);
    return ticketflow::app::kExitUsage;
  }
  const std::vector<std::string> rest(args.begin() + static_cast<long>(words), args.end());
  try {
    const auto parsed = ticketflow::cli::parseArgs(command->spec, rest);
    if (parsed.helpRequested()) {
      std::cout << ticketflow::cli::usage(command->spec);
      if (!command->run) std::cout << "\nnot built yet: " << command->not_built_reason << "\n";
      return ticketflow::app::kExitOk;
    }
    if (!command->run) {
      std::cerr << "ticketflow " << command->spec.name << ": not built yet (" << command->not_built_reason << ")\n";
      return ticketflow::app::kExitUsage;
    }
    // Servers (broker, sim, run ...) wait for a signal and then drain and stop cleanly; every
    // other command ends by itself, and a signal ends it at once.
    const std::string& name = command->spec.name;
    if (name != "broker" && name != "sim" && name.rfind("run ", 0) != 0)
      ticketflow::exitOnTerminationSignal("ticketflow " + name);
    return command->run(parsed);
  } catch (const ticketflow::cli::UsageError& e) {
    std::cerr << "ticketflow " << command->spec.name << ": " << e.what() << "\n\n"
              << ticketflow::cli::usage(command->spec);
    return ticketflow::app::kExitUsage;
  } catch (const ticketflow::ConfigError& e) {
    std::cerr << e.what() << "\n";
    return ticketflow::app::kExitFailure;
  } catch (const std::exception& e) {
    std::cerr << "ticketflow " << command->spec.name << ": " << e.what() << "\n";
    return ticketflow::app::kExitFailure;
  }
}
