// ticketflow sim: the provider simulator as its own process.
#include <fstream>
#include <iostream>
#include <sstream>

#include "command.hpp"
#include "sim/simulator.hpp"
#include "ticketflow/config/config.hpp"
#include "ticketflow/core/clock.hpp"
#include "ticketflow/core/embedded.hpp"
#include "ticketflow/core/signals.hpp"
#include "ticketflow/domain/ticket_file.hpp"

namespace ticketflow::app {
namespace {

// The file's text, or the embedded default when `path` is empty.
std::pair<std::string, std::string> textOf(const std::string& path, const std::string& embedded) {
  if (path.empty()) return {std::string(embeddedFile(embedded).value_or("")), "<embedded " + embedded + ">"};
  std::ifstream in(path);
  if (!in) throw ConfigError(path, "", "cannot read the file (does it exist?)");
  std::stringstream s;
  s << in.rdbuf();
  return {s.str(), path};
}

int runSim(const cli::ParsedArgs& args) {
  const auto [profiles, profiles_source] = textOf(args.find("profiles").value_or(""), "config/sim_profiles.yaml");
  const auto [runbooks, runbooks_source] = textOf(args.find("runbooks").value_or(""), "config/runbooks.yaml");
  sim::SimulatorOptions options = sim::loadSimulatorOptions(profiles, profiles_source, runbooks, runbooks_source);
  options.port = static_cast<int>(args.getInt("port", 0, 65535));
  if (args.has("seed")) options.seed = static_cast<std::uint64_t>(args.getInt("seed", 0, INT64_MAX));
  options.latency_scale = args.getDouble("latency-scale");
  if (options.latency_scale < 0) throw cli::UsageError("--latency-scale must be >= 0");
  options.faults_enabled = !args.has("no-faults");
  options.max_threads = static_cast<int>(args.getInt("max-threads", 1, 4096));
  options.request_log = args.find("request-log").value_or("");
  options.log_bodies = args.has("log-bodies");
  if (auto file = args.find("labels")) {
    auto records = readTicketRecords(*file);
    if (!records) throw ConfigError(*file, "", records.error().message);
    TicketDefaults defaults;
    defaults.created_at = formatRfc3339(SystemClock::instance().now());
    std::vector<Ticket> tickets;
    for (const auto& record : *records)
      if (auto ticket = ticketFromRecord(record, {}, defaults)) tickets.push_back(std::move(*ticket));
    options.labels = sim::labelsOf(tickets);
    if (options.labels.empty())
      throw cli::UsageError("--labels " + *file + ": no ticket with a label or category column");
  }
  if (auto var = args.find("api-key-env")) {
    auto key = processEnv(*var);
    if (!key || key->empty()) throw cli::UsageError("environment variable " + *var + " is not set");
    options.expected_api_key = *key;
  }
  sim::ProviderSimulator simulator(std::move(options));
  if (auto file = args.find("port-file")) {
    const std::string tmp = *file + ".tmp";
    std::ofstream(tmp) << simulator.port() << "\n";
    std::rename(tmp.c_str(), file->c_str());
  }
  std::cout << "provider simulator listening on " << simulator.baseUrl() << "\n"
            << "  OpenAI Chat Completions: POST " << simulator.baseUrl() << "/v1/chat/completions\n"
            << "  Anthropic Messages:      POST " << simulator.baseUrl() << "/v1/messages\n"
            << "every reply is simulated. Ctrl-C or SIGTERM stops it.\n"
            << std::flush;
  while (!waitForTerminationSignal(std::chrono::seconds(1))) {
  }
  const auto s = simulator.stats();
  std::cout << "simulator stopped: " << s.requests << " requests, " << s.ok << " ok, " << s.rate_limited
            << " rate-limited, " << s.server_errors << " server errors, " << s.hangs << " hangs\n";
  return kExitOk;
}

}  // namespace

std::vector<Command> simulatorCommands() {
  return {{{"sim",
            "run the provider simulator (OpenAI and Anthropic protocols)",
            "",
            0,
            0,
            {{"port", "N", "port on 127.0.0.1 (0: any free port)", "0"},
             {"port-file", "FILE", "write the chosen port to FILE"},
             {"profiles", "FILE", "per-model profiles (default: embedded config/sim_profiles.yaml)"},
             {"runbooks", "FILE", "runbook snippets (default: embedded config/runbooks.yaml)"},
             {"seed", "N", "seed for faults and latency (default: from the profiles file)"},
             {"latency-scale", "X", "multiply every latency (0: answer at once)", "1"},
             {"no-faults", "", "disable all fault injection"},
             {"request-log", "FILE", "append one JSON line per request (never API keys)"},
             {"log-bodies", "", "include request bodies in the request log (tests)"},
             {"labels", "FILE",
              "tickets (CSV or JSON lines) whose label or category column is the truth answers are judged by"},
             {"api-key-env", "NAME", "accept only the key in this environment variable"},
             {"max-threads", "N", "requests answered at once (each waits out its latency)", "512"}},
            "Answers like a model provider, deterministically for a given ticket, model and seed, from the\n"
            "runbook snippets; every reply says it is simulated. Profiles set latency (log-normal median and\n"
            "p99), tokens per character, RPM/TPM limits with rate-limit headers, and fault rates."},
           runSim,
           ""}};
}

}  // namespace ticketflow::app
