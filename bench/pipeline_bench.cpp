// ticketflow bench pipeline: every role in this process (`run all`); the broker, redis-server,
// the simulator (zero latency) and the backlog's producer each in their own, so the CPU and
// memory figures are the pipeline's own.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include <unistd.h>

#include "bench_tickets.hpp"
#include "cli/command.hpp"
#include "peer_bench.hpp"
#include "pipeline/pipeline.hpp"
#include "ticketflow/core/embedded.hpp"
#include "ticketflow/core/process.hpp"
#include "ticketflow/core/process_stats.hpp"
#include "ticketflow/core/stats.hpp"
#include "ticketflow/redis/client.hpp"
#include "ticketflow/redis/embedded_server.hpp"

namespace ticketflow::app {
namespace {

using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

constexpr const char* kBenchKeyEnv = "TICKETFLOW_BENCH_API_KEY";
constexpr const char* kBenchKey = "sk-bench-key";

kafka::Properties consumerOverrides(const cli::ParsedArgs& args) {
  kafka::Properties p;
  if (auto v = args.find("fetch-wait-ms")) p["fetch.wait.max.ms"] = *v;
  if (auto v = args.find("prefetch-kb")) p["queued.max.messages.kbytes"] = *v;
  return p;
}

int runBenchPipeline(const cli::ParsedArgs& args) {
  // The whole backlog waits in the embedded broker, which keeps only the newest 5 MiB of each
  // partition: 20,000 sample tickets fit in every topic with room to spare, many more would not.
  const int tickets = static_cast<int>(args.getInt("tickets", 1000, 20'000));
  const int rate = static_cast<int>(args.getInt("rate", 1, 100'000));
  const int seconds = static_cast<int>(args.getInt("latency-seconds", 5, 3600));
  const std::string exe = std::filesystem::read_symlink("/proc/self/exe").string();
  const std::string dir =
      std::filesystem::temp_directory_path() / ("ticketflow-bench-pipeline-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  ::setenv(kBenchKeyEnv, kBenchKey, 1);

  Config config = loadEmbeddedConfig();
  ChildProcess broker({exe, "broker", "--bootstrap-file", dir + "/bootstrap"}, dir + "/broker.log");
  config.kafka.bootstrap_servers = waitForFirstLine(dir + "/bootstrap", broker);
  ChildProcess sim({exe, "sim", "--port-file", dir + "/sim.port", "--latency-scale", "0", "--no-faults",
                    "--max-threads", "2048", "--api-key-env", kBenchKeyEnv},
                   dir + "/sim.log");
  const std::string sim_url = "http://127.0.0.1:" + waitForFirstLine(dir + "/sim.port", sim);
  redis::EmbeddedRedisServer redis_server;
  config.redis.url = redis_server.url();
  for (auto& p : config.providers) {
    p.base_url = sim_url + (p.api == ProviderApi::kOpenAi ? "/v1" : "");
    p.api_key_env = kBenchKeyEnv;
  }
  // Every ticket takes the whole path (intake, a tier, a model call, the result writer): no cache
  // short-cuts, and no provider rate limits capping the rate at the configured RPM.
  config.cache.enabled = false;
  for (auto& m : config.models) m.limits.rpm = m.limits.tpm = 0;
  config.results.exactly_once = args.has("exactly-once");

  std::cout << "bench pipeline: intake, " << config.tiers.size()
            << " tier pools and the result writer in this process;\n"
               "  broker, redis-server, simulator (zero latency) and the backlog's producer in their own; cache off,\n"
               "  rate limits off; results.exactly_once "
            << (config.results.exactly_once ? "on" : "off")
            << ";\n"
               "  consumers' fetch.wait.max.ms "
            << args.get("fetch-wait-ms")
            << ": librdkafka's mock broker answers an empty fetch only\n"
               "  when that wait ends, where a real broker answers as soon as data arrives\n"
            << std::flush;
  // The pipeline's own log lines go to a file, as a deployment's go to its log collector (kept in
  // memory they would count in the RSS figure).
  std::ofstream logs(dir + "/pipeline.log");
  pipeline::PipelineOptions options;
  options.roles = pipeline::allRoles(config);
  options.log_sink = &logs;
  for (const auto& kv : consumerOverrides(args)) options.consumer_properties.insert(kv);
  if (auto v = args.find("linger-ms")) options.producer_properties["linger.ms"] = *v;
  pipeline::Pipeline run(config, std::move(options));
  TopicCounter updates(config, config.kafka.topics.updates, consumerOverrides(args));
  run.start();
  // Every stage in its group with its partitions before the backlog arrives, so the figures are
  // the pipeline running, not consumer groups joining.
  for (const auto deadline = Steady::now() + 60s;;) {
    bool all = true;
    for (const auto& r : run.stats()) all = all && !r.stats.partitions.empty();
    if (all) break;
    if (Steady::now() > deadline)
      throw std::runtime_error("bench pipeline: the stages did not get their partitions in 60 s");
    updates.poll(100ms, [](const std::string&) {});
  }
  updates.setPaused(true);
  // The backlog is produced by `ticketflow submit` in its own process: the loader's JSON and
  // producer are the harness's work, not the pipeline's, and must not count in its CPU figure.
  const std::string backlog_file = dir + "/backlog.jsonl";
  {
    std::ofstream backlog(backlog_file);
    for (const auto& t : benchTickets("B-", tickets)) backlog << toJson(t) << "\n";
  }
  ::setenv("TICKETFLOW_KAFKA_BOOTSTRAP", config.kafka.bootstrap_servers.c_str(), 1);
  ChildProcess loader({exe, "submit", backlog_file, "--topic", config.kafka.topics.inbound}, dir + "/submit.log");

  // redis-server's own CPU over the same span (INFO cpu): it shares the machine's cores with the
  // pipeline.
  redis::RedisEndpoint redis_endpoint;
  redis_endpoint.port = redis_server.port();
  auto redis_client = redis::RedisClient::connect(redis_endpoint, 2000ms, 2000ms);
  auto redisCpuSeconds = [&]() -> double {
    if (!redis_client) return 0;
    auto info = (*redis_client)->command({"INFO", "cpu"});
    if (!info) return 0;
    double total = 0;
    for (const char* field : {"used_cpu_sys", "used_cpu_user"})
      total += std::stod(redis::infoField(info->str, field).value_or("0"));
    return total;
  };

  // Throughput: the whole backlog, from intake's first ticket to the result writer's last
  // update acknowledged by the broker (both from the stages' own counts), and the CPU this
  // process used meanwhile. Stages of one pipeline can run unevenly (a burst at the end is not
  // the pipeline's rate), so nothing shorter than the whole run is measured.
  double redis_cpu_first = 0;
  const auto started = Steady::now();
  Steady::time_point t_first{};
  double cpu_first = 0;
  std::int64_t switches_first = 0;
  auto last_trace = Steady::now();
  const bool trace = args.has("trace");
  std::int64_t done = 0;
  while (done < tickets && Steady::now() - started < 600s) {
    // 5 ms: the span's error is at most that in a run of seconds, and the bench's own wake-ups
    // (counted in this process) stay a few hundred a second.
    std::this_thread::sleep_for(5ms);
    const auto stats = run.stats();
    std::int64_t consumed = 0;
    for (const auto& r : stats) {
      if (r.role == "intake") consumed = r.stats.consumed;
      if (r.role == "results") done = r.stats.succeeded;
    }
    if (t_first == Steady::time_point{} && consumed > 0) {
      t_first = Steady::now();
      cpu_first = processCpuSeconds();
      switches_first = processContextSwitches();
      redis_cpu_first = redisCpuSeconds();
    }
    if (trace && Steady::now() - last_trace > 500ms) {
      last_trace = Steady::now();
      std::cerr << std::chrono::duration<double>(last_trace - started).count() << "s:";
      for (const auto& r : stats)
        std::cerr << " " << r.role << " " << r.stats.consumed << "/" << r.stats.succeeded << "/" << r.stats.in_flight;
      std::cerr << "\n";
    }
  }
  const auto t_last = Steady::now();
  const double cpu_last = processCpuSeconds();
  const std::int64_t switches_last = processContextSwitches();
  const double redis_cpu_last = redisCpuSeconds();
  if (loader.wait(60s) != 0) std::cerr << "bench pipeline: loading the backlog failed (see " << dir << "/submit.log)\n";
  if (done < tickets)
    throw std::runtime_error("bench pipeline: only " + std::to_string(done) + " of " + std::to_string(tickets) +
                             " updates in 600 s");
  updates.setPaused(false);
  updates.poll(2000ms, [](const std::string&) {});  // drain the backlog's updates from the bench's reader
  const double span = std::chrono::duration<double>(t_last - t_first).count();
  std::cout << std::fixed << std::setprecision(1) << "  backlog of " << tickets << ": " << tickets / span
            << " tickets/s end to end (intake's first ticket to the last update in " << span << " s); "
            << std::setprecision(3) << (cpu_last - cpu_first) / tickets * 1000
            << " CPU-s per 1,000 tickets (this process), " << std::setprecision(1)
            << static_cast<double>(switches_last - switches_first) / tickets << " context switches per ticket\n"
            << "  redis-server meanwhile: " << std::setprecision(3)
            << (redis_cpu_last - redis_cpu_first) / tickets * 1000 << " CPU-s per 1,000 tickets\n"
            << std::flush;

  // Latency: tickets sent one by one at a fixed rate, each timed from its produce to its update.
  std::mutex mutex;
  std::map<std::string, Steady::time_point> sent;
  std::vector<double> latencies_ms;
  const auto paced = benchTickets("L-", rate * seconds);
  std::thread sender([&] {
    kafka::Producer producer(config.kafka, "bench-paced", {{"linger.ms", "0"}});
    const auto t0 = Steady::now();
    for (std::size_t i = 0; i < paced.size(); ++i) {
      std::this_thread::sleep_until(t0 + std::chrono::microseconds(static_cast<std::int64_t>(i) * 1'000'000 / rate));
      {
        std::lock_guard lock(mutex);
        sent[paced[i].id] = Steady::now();
      }
      (void)producer.produceSync(config.kafka.topics.inbound, paced[i].id, toJson(paced[i]));
    }
  });
  const auto latency_start = Steady::now();
  std::size_t received = 0;
  while (received < paced.size() && Steady::now() - latency_start < std::chrono::seconds(seconds + 60)) {
    updates.poll(50ms, [&](const std::string& key) {
      std::lock_guard lock(mutex);
      auto it = sent.find(key);
      if (it == sent.end()) return;
      latencies_ms.push_back(std::chrono::duration<double, std::milli>(Steady::now() - it->second).count());
      sent.erase(it);
      ++received;
    });
  }
  sender.join();
  std::cout << std::setprecision(1) << "  " << rate << " tickets/s for " << seconds << " s: produce to update p50 "
            << percentile(latencies_ms, 0.50) << " ms, p99 " << percentile(latencies_ms, 0.99) << " ms (" << received
            << " of " << paced.size() << " timed)\n"
            << "  peak RSS of this process: " << peakResidentBytes() / (1024 * 1024) << " MiB\n";
  run.requestStop();
  (void)run.wait();

  // The peer, on the same simulator once the pipeline has stopped: its CPU per proxied request.
  if (!args.has("no-peer")) {
    PeerBenchOptions peer;
    peer.gateway_script = args.find("peer-gateway").value_or(defaultPeerGateway());
    peer.upstream_url = sim_url;
    peer.api_key = kBenchKey;
    peer.dir = dir;
    peer.requests = static_cast<int>(args.getInt("peer-requests", 500, 100'000));
    peer.concurrency = static_cast<int>(args.getInt("peer-concurrency", 1, 64));
    peer.rate = rate;
    peer.seconds = seconds;
    peer.pipeline_cpu_ms_per_ticket = (cpu_last - cpu_first) / tickets * 1000;
    runPeerBench(config, peer, std::cout);
  }
  std::filesystem::remove_all(dir);
  return kExitOk;
}

}  // namespace

std::vector<Command> pipelineBenchCommands() {
  return {{{"bench pipeline",
            "benchmark the whole pipeline",
            "",
            0,
            0,
            {{"tickets", "N",
              "tickets in the backlog phase (1000-20000: the embedded broker keeps 5 MiB per partition)", "20000"},
             {"rate", "N", "tickets per second in the latency phase", "200"},
             {"latency-seconds", "S", "length of the latency phase", "20"},
             {"fetch-wait-ms", "MS",
              "librdkafka fetch.wait.max.ms of every consumer (the mock broker holds an empty fetch that long)", "1"},
             {"prefetch-kb", "KB", "librdkafka queued.max.messages.kbytes for every stage", ""},
             {"linger-ms", "MS", "librdkafka linger.ms for every stage's producer", ""},
             {"exactly-once", "", "results.exactly_once: pending marks and look-ups on the updates topic", ""},
             {"trace", "", "print every stage's consumed/succeeded/in-flight counts twice a second", ""},
             {"peer-gateway", "PATH",
              "the Portkey gateway's start script (default: .tools/node_modules/@portkey-ai/gateway/build/"
              "start-server.js, installed by scripts/bootstrap --test-tools)",
              ""},
             {"peer-requests", "N", "requests the peer gateway proxies in its measured run", "3000"},
             {"peer-concurrency", "N", "load generator threads (keep-alive connections) against the peer", "4"},
             {"no-peer", "", "skip the peer phase", ""}},
            "Runs every role in this process on the embedded broker, a private redis-server and the simulator\n"
            "with zero latency (each in its own process), and prints: end-to-end tickets/s over a backlog,\n"
            "CPU-seconds per 1,000 tickets, produce-to-update latency p50/p99 at a fixed rate, peak RSS. Then\n"
            "the peer: the Portkey AI gateway (node) proxying the tier pools' requests to the same simulator,\n"
            "its CPU-ms per request (/proc/<pid>/stat) and the ratio pipeline/peer, and its latency at the rate."},
           runBenchPipeline,
           ""}};
}

}  // namespace ticketflow::app
