// ticketflow bench chaos: the whole pipeline on the local stack while a dependency is down for a
// while, longer than the fault suite's CI share (Redis 60 s, a provider 5 min). Prints what an
// on-call engineer asks afterwards: lost, dead-lettered, how long messages were held, and
// whether the ledger equals what the provider billed.
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>

#include <unistd.h>

#include "bench_tickets.hpp"
#include "cli/command.hpp"
#include "local_stack/local_stack.hpp"
#include "pipeline/pipeline.hpp"

namespace ticketflow::app {
namespace {

using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

int runBenchChaos(const cli::ParsedArgs& args) {
  const std::string fault = args.get("fault");
  if (fault != "redis" && fault != "provider") throw cli::UsageError("--fault: expected redis or provider");
  const int tickets = static_cast<int>(args.getInt("tickets", 100, 20'000));
  const auto outage = std::chrono::seconds(args.getInt("outage-seconds", 1, 3600));
  const double latency_scale = args.getDouble("latency-scale");
  if (latency_scale < 0) throw cli::UsageError("--latency-scale: expected a non-negative factor");
  const std::string dir =
      std::filesystem::temp_directory_path() / ("ticketflow-bench-chaos-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);

  Config config = loadEmbeddedConfig();
  config.cache.enabled = false;  // every ticket calls a model, so every ticket meets the fault
  local_stack::LocalStackOptions local;
  local.latency_scale = latency_scale;
  local.redis_append_only = true;  // as a ledger's Redis must run: a restart keeps the data
  local.request_log = dir + "/provider-requests.jsonl";
  local_stack::LocalStack stack(config, local);
  std::ofstream logs(dir + "/pipeline.log");
  pipeline::PipelineOptions options;
  options.roles = pipeline::allRoles(config);
  options.log_sink = &logs;
  options.consumer_properties = local_stack::LocalStack::consumerProperties();
  pipeline::Pipeline run(config, std::move(options));
  TopicCounter updates(config, config.kafka.topics.updates, local_stack::LocalStack::consumerProperties());
  TopicCounter dead_letters(config, config.kafka.topics.dlq, local_stack::LocalStack::consumerProperties());
  run.start();
  std::cout << "bench chaos: " << tickets << " tickets through every role (this process) on the local stack, "
            << (fault == "redis" ? "redis-server stopped" : "the provider answering 503 to everything") << " for "
            << outage.count() << " s once a quarter are answered; simulated latency x" << latency_scale << "\n"
            << std::flush;

  {
    kafka::Producer producer(config.kafka, "bench-chaos");
    std::vector<std::pair<std::string, std::string>> records;
    for (const auto& t : benchTickets("CHAOS-", tickets)) records.emplace_back(t.id, toJson(t));
    if (auto st = producer.produceBatch(config.kafka.topics.inbound, records); !st)
      throw std::runtime_error("bench chaos: producing the tickets: " + st.error().message);
  }
  std::map<std::string, int> seen;
  std::size_t update_messages = 0, dead = 0;
  MicroUsd updates_cost = 0;
  auto read = [&](std::chrono::milliseconds for_at_most) {
    updates.pollMessages(for_at_most, [&](const kafka::Message& m) {
      ++update_messages;
      ++seen[m.key.value_or("")];
      if (auto u = parseTicketUpdate(m.value)) updates_cost += u->cost_micro_usd;
    });
    dead_letters.pollMessages(20ms, [&](const kafka::Message&) { ++dead; });
  };
  const auto started = Steady::now();
  while (seen.size() < static_cast<std::size_t>(tickets) / 4 && Steady::now() - started < 300s) read(200ms);
  auto setDown = [&](bool down) {
    if (fault == "provider") return stack.simulator().setUnavailable(down);
    if (down) return stack.redisServer().stop();
    stack.redisServer().restart();  // the same port and data
  };
  setDown(true);
  const auto fault_began = Steady::now();
  std::int64_t most_held = 0;
  while (Steady::now() - fault_began < outage) {
    read(500ms);
    std::int64_t held = 0;
    for (const auto& r : run.stats())
      for (const auto& o : r.stats.outages) held += o.held_now;
    most_held = std::max(most_held, held);
  }
  setDown(false);
  const auto back_at = Steady::now();
  auto last_progress = Steady::now();
  for (std::size_t before = seen.size();
       seen.size() < static_cast<std::size_t>(tickets) && Steady::now() - last_progress < 120s;) {
    read(500ms);
    if (seen.size() != before) {
      before = seen.size();
      last_progress = Steady::now();
    }
  }
  const double recovered_s = std::chrono::duration<double>(Steady::now() - back_at).count();
  read(1500ms);  // a late duplicate would show

  std::int64_t held_messages = 0;
  double held_seconds = 0;
  std::map<std::string, std::int64_t> held_by_cause;
  for (const auto& r : run.stats())
    for (const auto& o : r.stats.outages) {
      held_messages += o.held;
      held_seconds += o.held_seconds;
      held_by_cause[o.cause] += o.held;
    }
  MicroUsd settled = -1, reserved = -1;
  if (auto spend = run.ledger().show())
    for (const auto& b : *spend)
      if (b.scope == "global" && b.period == "day") {
        settled = b.settled;
        reserved = b.reserved;
      }
  run.requestStop();
  (void)run.wait();
  const auto billed = sim::billedFromRequestLog(config, local.request_log);
  std::string causes;
  for (const auto& [cause, n] : held_by_cause) causes += (causes.empty() ? "" : ", ") + cause + " " + std::to_string(n);
  std::cout << std::fixed << std::setprecision(1) << "  answered " << seen.size() << " of " << tickets << " (lost "
            << (tickets - static_cast<int>(seen.size())) << "), duplicate updates " << (update_messages - seen.size())
            << ", dead-lettered " << dead << "\n"
            << "  held: " << held_messages << " message(s) (" << causes << "), " << held_seconds
            << " s in all, at most " << most_held << " at once; the last update " << recovered_s
            << " s after the dependency came back\n"
            << "  ledger settled " << settled << " µ$ (still reserved " << reserved << "), provider billed "
            << billed.micro_usd << " µ$ for " << billed.requests << " requests, updates' cost " << updates_cost
            << " µ$: " << (settled == billed.micro_usd && updates_cost == billed.micro_usd ? "equal" : "NOT equal")
            << "\n";
  std::filesystem::remove_all(dir);
  return seen.size() == static_cast<std::size_t>(tickets) && dead == 0 ? kExitOk : 1;
}

}  // namespace

std::vector<Command> chaosBenchCommands() {
  return {{{"bench chaos",
            "the pipeline through a long Redis or provider outage",
            "",
            0,
            0,
            {{"fault", "KIND",
              "redis (redis-server stopped, then restarted on its data) or provider (every request 503)", "redis"},
             {"outage-seconds", "S", "how long the dependency stays down", "60"},
             {"tickets", "N", "tickets sent at the start (100-20000)", "1000"},
             {"latency-scale", "X", "multiply the simulated model latency", "0.05"}},
            "Runs every role in this process on the local stack (embedded broker, private redis-server with an\n"
            "append-only file, provider simulator with a request log). Once a quarter of the tickets are\n"
            "answered the dependency goes down for --outage-seconds, then comes back. Prints lost, duplicate\n"
            "and dead-lettered tickets, the messages held and for how long, and the ledger against the\n"
            "provider's bill. Exits 1 when a ticket was lost or dead-lettered. The fault suite (ctest -L chaos)\n"
            "runs the short variants."},
           runBenchChaos,
           ""}};
}

}  // namespace ticketflow::app
