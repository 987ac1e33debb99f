#pragma once
// The result-writer role: consumes the results topic and writes each ticket update to every
// configured sink that serves the ticket's source system (results.sinks): the updates topic,
// a webhook, Jira, ServiceNow.
//
// Idempotency per (tenant, ticket id, revision, sink): a Redis hash records which sinks already
// have the update, so a redelivered or duplicated result writes nowhere twice. HTTP sinks are
// marked "pending" before their write and "written" after it; the topic sink after the broker
// acknowledges the update (the stage's after-ack hook). A crash between a write and its marker
// leaves "pending" alone: the next attempt tells the sink it may have written, and Jira and
// ServiceNow look for their own comment or work note before writing (sinks.hpp); a webhook
// repeats with the same Idempotency-Key "<ticket id>:<revision>" for its receiver to drop.
//
// Failures: a retriable sink error (5xx, 429, timeouts) fails the attempt; the engine retries
// with backoff and the sinks already written are skipped. A permanent one (4xx: the update or
// the sink's settings are wrong) dead-letters that sink's write (stage "results:<sink>") while
// the other sinks still get the update. Redis down: the attempt fails retriably (no marker, no
// write), so nothing is written twice.

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "sinks.hpp"
#include "ticketflow/config/config.hpp"
#include "ticketflow/core/clock.hpp"
#include "ticketflow/core/worker_pool.hpp"
#include "ticketflow/kafka/client.hpp"
#include "ticketflow/observability/log.hpp"
#include "ticketflow/observability/pipeline_metrics.hpp"
#include "ticketflow/redis/pool.hpp"
#include "ticketflow/redis/written_markers.hpp"
#include "ticketflow/stage/stage.hpp"

namespace ticketflow::results {

// On every update produced to the updates topic: writeMarker(update), so a look-up finds it.
inline constexpr const char* kWriteMarkerHeader = "write-marker";

struct SinkBinding {
  SinkConfig config;
  std::unique_ptr<ResultSink> sink;  // null for the topic sink
};

// The configured sinks, with their secrets read from the environment. Throws ConfigError naming
// results.sinks[i].secret_env when a variable is unset.
std::vector<SinkBinding> makeSinks(const Config& config, EnvLookup env = processEnv);

class ResultsRole {
 public:
  // `markers` null: no idempotency markers (tests of the sinks alone); in production
  // redis::RedisWrittenMarkers. Writes to HTTP sinks run on `http_threads` threads so slow ticket
  // systems do not hold the stage's workers.
  ResultsRole(const Config& config, std::vector<SinkBinding> sinks, std::unique_ptr<redis::WrittenMarkers> markers,
              observability::PipelineMetrics* metrics = nullptr, const Clock& clock = SystemClock::instance(),
              int http_threads = 32, observability::Logger* logger = nullptr);
  // Stops the sink threads first (their running writes use the markers and the topic reader),
  // then the rest.
  ~ResultsRole();
  // Never blocks (parses, then hands the write to the marker batcher or the HTTP sinks' threads),
  // so the stage may call it on its poll thread (StageOptions::handler_hands_off).
  stage::Handler handler();

  // How long a produce to the updates topic may take (the topic sinks' timeout_ms): with
  // results.exactly_once, the stage's producer gives up on a record after it
  // (message.timeout.ms), so a write begun that long ago has landed or never will.
  static int topicWriteTimeoutMs(const Config& config);

 private:
  // Writes the update to every sink it serves that is not in `written` (from the markers).
  // `written`: the markers hash (sink -> when written, "pending:<sink>" -> when begun).
  void write(const stage::Delivery& delivery, const stage::Completion& completion, const TicketUpdate& update,
             const std::map<std::string, std::string>& written);
  // Marks `sinks` written now (no-op without markers).
  void markWritten(const std::string& key, const std::vector<std::string>& sinks);

  // results.exactly_once: where the update will land on the updates topic (partition, and an
  // offset it cannot land below), written into its pending mark before it is produced.
  struct TopicPlacement {
    std::int32_t partition = 0;
    std::int64_t floor = 0;
  };
  Result<TopicPlacement> placeOnTopic(const std::string& key);
  // Whether an update marked pending at `placement` reached the updates topic.
  Result<bool> onTopic(const TicketUpdate& update, const TopicPlacement& placement);

  const Config& config_;
  std::vector<SinkBinding> sinks_;
  observability::PipelineMetrics* metrics_;
  const Clock& clock_;
  observability::Logger* logger_;
  bool has_http_sinks_ = false;
  std::unique_ptr<WorkerPool> http_;
  // results.exactly_once with a topic sink and markers: reads the updates topic back.
  std::unique_ptr<kafka::RecordFinder> finder_;
  std::mutex finder_mutex_;  // one user of finder_ at a time
  // The updates topic's partition count and each partition's end, refreshed every few seconds
  // (an older end is still a floor: offsets only grow).
  std::mutex placement_mutex_;
  std::vector<std::int64_t> partition_ends_;
  std::chrono::steady_clock::time_point ends_read_at_{};
  // Which sinks have each update (null: none kept). Last: destroyed first, so its batcher's final
  // callbacks still find the HTTP pool and everything else alive.
  std::unique_ptr<redis::WrittenMarkers> markers_;
};

}  // namespace ticketflow::results
