// bench stage: the stage engine against a raw librdkafka relay on the embedded broker.
#include <atomic>
#include <cstdio>
#include <iostream>
#include <thread>

#include "cli/command.hpp"
#include "ticketflow/core/process_stats.hpp"
#include "ticketflow/kafka/client.hpp"
#include "ticketflow/kafka/raw_relay.hpp"
#include "ticketflow/stage/stage.hpp"
#include "ticketflow/stage/timer.hpp"

namespace ticketflow::app {
namespace {

using namespace std::chrono_literals;
using Seconds = std::chrono::duration<double>;

struct Topics {
  std::string input, output, dlq;
};

Topics makeTopics(kafka::MockBroker& broker, const std::string& run, int partitions) {
  Topics t{"bench." + run + ".in", "bench." + run + ".out", "bench." + run + ".dlq"};
  for (const auto& name : {t.input, t.output, t.dlq})
    if (auto st = broker.createTopic(name, partitions); !st) throw std::runtime_error(st.error().message);
  return t;
}

stage::StageOptions stageOptions(const std::string& name, const Topics& t, int window, int threads) {
  stage::StageOptions o;
  o.name = name;
  o.input_topics = {t.input};
  o.group = "bench-" + name;
  o.dlq_topic = t.dlq;
  o.limits.max_in_flight = window;
  o.limits.worker_threads = threads;
  o.limits.drain_deadline_ms = 5000;
  return o;
}

double mib(std::size_t bytes) {
  return static_cast<double>(bytes) / (1 << 20);
}

// (c): every handler call answers 2 s later from a timer; no thread waits.
int benchSlowHandler(kafka::MockBroker& broker, const KafkaConfig& kafka, int partitions, std::size_t size, int window,
                     int threads, int seconds) {
  const Topics t = makeTopics(broker, "slow", partitions);
  // Enough for the window's ceiling (window per 2 s) over the whole run.
  const std::int64_t count = static_cast<std::int64_t>(window) / 2 * (seconds + 6);
  if (auto st = kafka::produceFiller(kafka, t.input, count, size); !st) throw std::runtime_error(st.error().message);
  const std::size_t rss_before = residentBytes();
  stage::TimerQueue timers;
  std::atomic<bool> started{false};
  const std::string output = t.output;
  auto handler = [&](const std::shared_ptr<const stage::Delivery>& d, stage::Completion done) {
    started = true;
    timers.schedule(2s, [d, done, output] {
      done.succeed({stage::OutputRecord{output, "", d->message.value, {}, {}}});
    });
  };
  stage::Stage engine(kafka, stageOptions("slow", t, window, threads), handler);
  std::thread runner([&] { (void)engine.run(); });
  while (!started.load()) std::this_thread::sleep_for(1ms);
  const auto t0 = std::chrono::steady_clock::now();
  // The first answers come after 2 s; measure from 4 s on, once the window has turned over.
  std::this_thread::sleep_until(t0 + 4s);
  const auto from = engine.stats();
  const auto from_at = std::chrono::steady_clock::now();
  std::int64_t max_in_flight = 0;
  while (std::chrono::steady_clock::now() < t0 + std::chrono::seconds(seconds)) {
    max_in_flight = std::max(max_in_flight, engine.stats().in_flight);
    std::this_thread::sleep_for(50ms);
  }
  const auto to = engine.stats();
  const Seconds span = std::chrono::steady_clock::now() - from_at;
  engine.requestStop();
  runner.join();
  const double rate = static_cast<double>(to.succeeded - from.succeeded) / span.count();
  std::printf(
      "(c) engine, handler answering after 2 s (timer, no blocked thread), window %d, %d worker threads:\n"
      "    sustained %.0f msgs/s over %.1f s (target >= 400), max in flight %lld\n"
      "    peak RSS of this process %.1f MiB (target <= 150), of which the embedded broker's data was %.1f MiB before "
      "the run\n",
      window, threads, rate, span.count(), static_cast<long long>(max_in_flight), mib(peakResidentBytes()),
      mib(rss_before));
  return rate >= 400 ? 0 : 1;
}

double benchRawRelay(kafka::MockBroker& broker, const KafkaConfig& kafka, int partitions, std::size_t size,
                     std::int64_t count) {
  const Topics t = makeTopics(broker, "raw", partitions);
  if (auto st = kafka::produceFiller(kafka, t.input, count, size); !st) throw std::runtime_error(st.error().message);
  auto result = kafka::runRawRelay(kafka, t.input, t.output, "bench-raw", count, 120s);
  if (!result) throw std::runtime_error(result.error().message);
  const double rate = static_cast<double>(result->messages) / result->elapsed.count();
  std::printf("(a) raw librdkafka relay (poll one, produce, store offset): %lld msgs in %.2f s = %.0f msgs/s\n",
              static_cast<long long>(result->messages), result->elapsed.count(), rate);
  return rate;
}

double benchNoOpEngine(kafka::MockBroker& broker, const KafkaConfig& kafka, int partitions, std::size_t size,
                       std::int64_t count, int window, int threads) {
  const Topics t = makeTopics(broker, "noop", partitions);
  if (auto st = kafka::produceFiller(kafka, t.input, count, size); !st) throw std::runtime_error(st.error().message);
  std::atomic<bool> started{false};
  std::chrono::steady_clock::time_point first{};
  const std::string output = t.output;
  auto handler = [&](const std::shared_ptr<const stage::Delivery>& d, stage::Completion done) {
    if (!started.exchange(true)) first = std::chrono::steady_clock::now();
    done.succeed({stage::OutputRecord{output, "", d->message.value, {}, {}}});
  };
  stage::Stage engine(kafka, stageOptions("noop", t, window, threads), handler);
  std::thread runner([&] { (void)engine.run(); });
  const auto deadline = std::chrono::steady_clock::now() + 120s;
  stage::StageStats s;
  while ((s = engine.stats()).succeeded < count && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  engine.requestStop();
  runner.join();
  if (s.succeeded < count) throw std::runtime_error("no-op engine run did not finish in 120 s");
  const Seconds elapsed = s.last_done_at - first;
  const double rate = static_cast<double>(s.succeeded) / elapsed.count();
  std::printf(
      "(b) engine, no-op handler (same output), window %d, %d worker threads: %lld msgs in %.2f s = %.0f msgs/s\n"
      "    max in flight %lld, backpressure pauses %lld\n",
      window, threads, static_cast<long long>(s.succeeded), elapsed.count(), rate,
      static_cast<long long>(s.max_in_flight_seen), static_cast<long long>(s.backpressure_pauses));
  return rate;
}

int runBenchStage(const cli::ParsedArgs& args) {
  const auto count = static_cast<std::int64_t>(args.getInt("messages", 100, 1000000));
  const auto size = static_cast<std::size_t>(args.getInt("size", 1, 1 << 20));
  const int partitions = static_cast<int>(args.getInt("partitions", 1, 64));
  const int window = static_cast<int>(args.getInt("window", 1, 1000000));
  const int threads = static_cast<int>(args.getInt("threads", 1, 256));
  const int seconds = static_cast<int>(args.getInt("seconds", 6, 600));
  kafka::MockBroker broker;
  KafkaConfig kafka;
  kafka.bootstrap_servers = broker.bootstrapServers();
  kafka.client_id = "bench";
  std::printf("bench stage: embedded broker, %d partitions, %zu-byte messages\n", partitions, size);
  std::fflush(stdout);
  // The slow-handler run goes first so its peak RSS is not inflated by the other runs' data.
  const int slow_status = benchSlowHandler(broker, kafka, partitions, size, window, threads, seconds);
  const double raw = benchRawRelay(broker, kafka, partitions, size, count);
  const double engine = benchNoOpEngine(broker, kafka, partitions, size, count, window, threads);
  std::printf("ratio engine/raw: %.2f (target >= 0.7)\n", engine / raw);
  return slow_status == 0 && engine / raw >= 0.7 ? kExitOk : kExitFailure;
}

}  // namespace

std::vector<Command> stageBenchCommands() {
  return {
      {{"bench stage",
        "benchmark the stage engine against a raw relay",
        "",
        0,
        0,
        {{"messages", "N", "messages for the raw relay and the no-op engine runs", "16000"},
         {"size", "BYTES", "message size", "1024"},
         {"partitions", "N", "partitions per topic", "4"},
         {"window", "N", "stage.max_in_flight for the engine runs", "1024"},
         {"threads", "N", "stage.worker_threads for the engine runs", "4"},
         {"seconds", "S", "length of the 2 s handler run", "20"}},
        "Runs on the embedded broker, in this order: (c) the engine with a handler that answers after\n"
        "2 s from a timer (sustained msgs/s and peak RSS), (a) a raw consume->produce relay, (b) the\n"
        "engine with a no-op handler producing the same output; prints msgs/s and the (b)/(a) ratio.\n"
        "Exit 1 when a target (ratio >= 0.7, >= 400 msgs/s) is missed."},
       runBenchStage},
  };
}

}  // namespace ticketflow::app
