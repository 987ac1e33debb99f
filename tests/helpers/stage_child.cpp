// A pass-through stage in its own process, for the crash-safety test: it is killed with SIGKILL
// and restarted while the embedded broker (in the test process) keeps the data.
//   stage_test_child BOOTSTRAP INPUT OUTPUT DLQ GROUP WINDOW
// Each handler call completes after a random 0-20 ms on a timer, without holding a thread.
// SIGTERM: drain, commit, print the stats line, exit 0.
#include <cstdio>
#include <random>
#include <string>

#include "ticketflow/core/signals.hpp"
#include "ticketflow/stage/stage.hpp"
#include "ticketflow/stage/timer.hpp"

int main(int argc, char** argv) {
  using namespace ticketflow;
  blockTerminationSignals();
  if (argc != 7) {
    std::fprintf(stderr, "usage: stage_test_child BOOTSTRAP INPUT OUTPUT DLQ GROUP WINDOW\n");
    return 2;
  }
  KafkaConfig kafka;
  kafka.bootstrap_servers = argv[1];
  kafka.client_id = "stage-child";
  stage::StageOptions options;
  options.name = "crash-test";
  options.input_topics = {argv[2]};
  const std::string output = argv[3];
  options.dlq_topic = argv[4];
  options.group = argv[5];
  options.limits.max_in_flight = std::stoi(argv[6]);
  options.limits.worker_threads = 2;
  options.limits.commit_interval_ms = 100;
  options.limits.drain_deadline_ms = 5000;
  options.consumer_properties = {{"session.timeout.ms", "3000"}, {"heartbeat.interval.ms", "300"}};

  stage::TimerQueue timers;  // outlives the stage: pending answers still have somewhere to go
  auto handler = [&](const std::shared_ptr<const stage::Delivery>& d, stage::Completion done) {
    thread_local std::mt19937 rng(std::random_device{}());
    timers.schedule(std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 20)(rng)), [d, done, output] {
      done.succeed({stage::OutputRecord{output, "", d->message.value, {}, {}}});
    });
  };
  stage::Stage engine(kafka, options, handler);
  const Status status = stage::runUntilTerminated(engine);
  const auto s = engine.stats();
  std::printf("stage_test_child: consumed %lld, succeeded %lld, skipped as already done %lld, abandoned %lld\n",
              static_cast<long long>(s.consumed), static_cast<long long>(s.succeeded),
              static_cast<long long>(s.skipped_done), static_cast<long long>(s.abandoned));
  if (!status.ok()) {
    std::fprintf(stderr, "stage_test_child: %s\n", status.error().message.c_str());
    return 1;
  }
  return 0;
}
