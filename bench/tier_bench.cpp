// ticketflow bench tier: the tier role against the provider simulator, each in its own process
// beside the embedded broker, so the figures are the tier role's own CPU and memory.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include <unistd.h>

#include "cli/command.hpp"
#include "ticketflow/config/config.hpp"
#include "ticketflow/core/process.hpp"
#include "ticketflow/core/process_stats.hpp"
#include "ticketflow/provider/prompt.hpp"
#include "ticketflow/stage/stage.hpp"
#include "tier/tier_role.hpp"

namespace ticketflow::app {
namespace {

using namespace std::chrono_literals;

std::optional<std::string> onlyBenchKey(const std::string& name) {
  return name == "TICKETFLOW_BENCH_API_KEY" ? processEnv(name) : std::nullopt;
}

// Measured between 10% and 90% of the tickets done, so consumer-group joins and the first
// calls' latency do not count: the steady state.
struct PhaseResult {
  std::int64_t done = 0;  // in the measured stretch
  double seconds = 0;
  double cpu_seconds = 0;
  std::int64_t total_done = 0;
};

// Runs the tier role over `tickets` routed tickets until all are done or `limit` passes.
PhaseResult runPhase(const std::string& exe, const std::string& dir, const std::string& bootstrap,
                     const std::string& name, const std::vector<std::string>& sim_args, int tickets, int window,
                     int call_threads, std::chrono::seconds limit) {
  const std::string port_file = dir + "/" + name + ".port";
  // The simulator insists on a key, as providers do; it reaches the tier the way a real one does.
  ::setenv("TICKETFLOW_BENCH_API_KEY", "sk-bench-key", 1);
  std::vector<std::string> argv = {exe,       "sim",           "--port-file",
                                   port_file, "--no-faults",   "--max-threads",
                                   "2048",    "--api-key-env", "TICKETFLOW_BENCH_API_KEY"};
  argv.insert(argv.end(), sim_args.begin(), sim_args.end());
  ChildProcess sim(argv, dir + "/" + name + ".sim.log");
  const std::string port = waitForFirstLine(port_file, sim);

  const std::string yaml = R"(
version: 1
kafka:
  bootstrap_servers: )" + bootstrap +
                           R"(
  topics: {inbound: )" + name +
                           R"(.in, tier_prefix: )" + name + R"(.tier., results: )" + name + R"(.results, updates: )" +
                           name + R"(.updates, dlq: )" + name + R"(.dlq}
  consumer_groups: {intake: g-intake, tier_prefix: )" +
                           name + R"(-tier-, results: g-results}
redis: {url: "redis://127.0.0.1:6379/0"}
stage: {max_in_flight: )" + std::to_string(window) +
                           R"(, worker_threads: 4, commit_interval_ms: 500}
providers:
  - {name: sim, api: openai, base_url: "http://127.0.0.1:)" +
                           port + R"(/v1", api_key_env: TICKETFLOW_BENCH_API_KEY, max_connections: )" +
                           std::to_string(call_threads) + R"(}
models:
  - {name: bench-model, provider: sim, model_id: bench-model, input_usd_per_mtok: 0.10, output_usd_per_mtok: 0.40, limits: {max_concurrency: )" +
                           std::to_string(call_threads) + R"(}}
tiers:
  - {name: bench, models: [bench-model]}
)";
  const Config config = loadConfigText(yaml, "<bench tier>", dir, onlyBenchKey);
  const std::string topic = config.kafka.tierTopic("bench");
  std::vector<std::pair<std::string, std::string>> records;
  for (int i = 0; i < tickets; ++i) {
    RoutedTicket t;
    t.ticket.id = name + "-" + std::to_string(i);
    t.ticket.tenant = "bench";
    t.ticket.subject = "VPN drops every hour";
    t.ticket.body = "Since Monday the VPN disconnects about once an hour with a gateway timeout (GP-4011). Ticket " +
                    std::to_string(i);
    t.ticket.created_at = "2026-11-22T10:00:00Z";
    t.trace_id = "0123456789abcdef0123456789abcdef";
    t.received_at = formatRfc3339(SystemClock::instance().now());
    t.classification = {"Access", 0.9, Difficulty::kEasy, 0.2, {}};
    t.tier = "bench";
    t.rule = "bench";
    records.emplace_back(t.ticket.id, toJson(t));
  }
  {
    kafka::Producer producer(config.kafka, "bench-load");
    if (auto st = producer.produceBatch(topic, records); !st) throw std::runtime_error(st.error().message);
  }
  tier::TierService service(
      config, "bench", tier::httpModelClientFactory(config), SystemClock::instance(),
      [](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); }, provider::PromptSet::builtin());
  tier::TierRole role(config, service, call_threads);
  stage::StageOptions options;
  options.name = "tier:bench";
  options.input_topics = {topic};
  options.group = config.kafka.tierGroup("bench");
  options.dlq_topic = config.kafka.topics.dlq;
  options.limits = config.stage;
  options.handler_hands_off = true;  // as the pipeline runs the tier role
  stage::Stage stage(config.kafka, options, role.handler());
  const auto started = std::chrono::steady_clock::now();
  std::thread runner([&] { (void)stage.run(); });
  PhaseResult r;
  const std::int64_t from = tickets / 10, to = tickets - tickets / 10;
  std::int64_t done_at_start = -1;
  double cpu_at_start = 0;
  auto t_start = started;
  while (std::chrono::steady_clock::now() - started < limit) {
    const auto s = stage.stats();
    r.total_done = s.succeeded + s.dead_lettered;
    if (done_at_start < 0 && r.total_done >= from) {
      done_at_start = r.total_done;
      cpu_at_start = processCpuSeconds();
      t_start = std::chrono::steady_clock::now();
    }
    if (done_at_start >= 0 && r.total_done >= to) {
      r.done = r.total_done - done_at_start;
      r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
      r.cpu_seconds = processCpuSeconds() - cpu_at_start;
      break;
    }
    std::this_thread::sleep_for(5ms);
  }
  stage.requestStop();
  runner.join();
  if (r.done == 0)
    throw std::runtime_error("bench tier: only " + std::to_string(r.total_done) + " of " + std::to_string(tickets) +
                             " tickets done in time");
  return r;
}

int runBenchTier(const cli::ParsedArgs& args) {
  const int fast_tickets = static_cast<int>(args.getInt("tickets", 100, 1000000));
  const int slow_tickets = static_cast<int>(args.getInt("slow-tickets", 100, 1000000));
  const int window = static_cast<int>(args.getInt("window", 1, 100000));
  const int call_threads = static_cast<int>(args.getInt("call-threads", 1, 4096));
  const std::string exe = std::filesystem::read_symlink("/proc/self/exe").string();
  const std::string dir =
      std::filesystem::temp_directory_path() / ("ticketflow-bench-tier-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  // The mock cluster does not answer CreateTopics: the broker creates each phase's topics at start.
  std::string topics;
  for (const std::string phase : {"zero", "slow"})
    topics += phase + ".tier.bench," + phase + ".results," + phase + ".dlq,";
  ChildProcess broker({exe, "broker", "--partitions", "4", "--topics", topics, "--bootstrap-file", dir + "/bootstrap"},
                      dir + "/broker.log");
  const std::string bootstrap = waitForFirstLine(dir + "/bootstrap", broker);
  std::cout << "bench tier: tier role in this process; broker and simulator in their own processes\n";

  const auto fast =
      runPhase(exe, dir, bootstrap, "zero", {"--latency-scale", "0"}, fast_tickets, window, call_threads, 300s);
  std::cout << "  zero latency: " << fast.done << " tickets (10%-90% of " << fast_tickets << ") in " << fast.seconds
            << " s: " << static_cast<int>(fast.done / fast.seconds) << " calls/s, "
            << static_cast<int>(fast.cpu_seconds / std::max<std::int64_t>(fast.done, 1) * 1e6)
            << " CPU us per call (tier process: stage, HTTP, JSON, normaliser)\n";

  const std::string profiles = dir + "/slow_profiles.yaml";
  std::ofstream(profiles) << "profiles:\n  default: {latency_median_ms: 2000, latency_p99_ms: 2400}\n";
  const auto slow =
      runPhase(exe, dir, bootstrap, "slow", {"--profiles", profiles}, slow_tickets, window, call_threads, 300s);
  std::cout << "  2 s median latency, window " << window << ", " << call_threads << " call threads: " << slow.done
            << " tickets (10%-90% of " << slow_tickets << ") in " << slow.seconds
            << " s: " << static_cast<int>(slow.done / slow.seconds) << " tickets/s sustained\n"
            << "  peak RSS of the tier process: " << peakResidentBytes() / (1024 * 1024) << " MiB\n";
  std::filesystem::remove_all(dir);
  return kExitOk;
}

}  // namespace

std::vector<Command> tierBenchCommands() {
  return {{{"bench tier",
            "benchmark the tier role against the simulator",
            "",
            0,
            0,
            {{"tickets", "N", "tickets for the zero-latency run", "5000"},
             {"slow-tickets", "N", "tickets for the 2 s latency run", "8000"},
             {"window", "N", "stage.max_in_flight", "1024"},
             {"call-threads", "N", "the tier's call threads (and the model's max_concurrency)", "768"}},
            "Runs the tier role (stage engine + TierService) on the embedded broker against `ticketflow sim`\n"
            "in two phases: zero latency (calls/s and CPU microseconds per call of the tier process), and\n"
            "2 s median latency with the window full (sustained tickets/s and the process's peak RSS)."},
           runBenchTier,
           ""}};
}

}  // namespace ticketflow::app
