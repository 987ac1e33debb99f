#pragma once
// The stage engine every role (intake, tier pools, result writers) runs on: consume a message,
// run the role's handler, produce its outputs, commit. A role supplies only a Handler.
//
// Guarantees (docs/stage-runtime.md explains how):
// - at most `stage.max_in_flight` messages in flight per process; when the window stays full
//   the engine pauses the partitions (those it paused, and only those, are resumed when it
//   drains), so memory stays flat however large the backlog;
// - messages with the same key run one at a time in offset order; different keys run
//   concurrently on `stage.worker_threads` threads; a handler may complete later from any thread;
// - an input counts as done only when every output it produced is acknowledged by the broker
//   (idempotent producer, acks=all); the committed offset is the highest contiguous done one,
//   and work done beyond it is listed in the commit metadata so a restart skips it;
// - an error naming an outage (Error::outage: Redis, the providers, the broker are down) is
//   not the message's fault and uses no attempt: the message is held, its partition pauses,
//   one held message per cause probes with capped backoff (stage.outage_probe_max_ms), and all
//   of them go on by themselves once it gets through; stage.max_hold_s may bound the hold;
// - other retriable errors are retried with exponential backoff and jitter up to
//   `stage.max_attempts`, then dead-lettered; other errors are dead-lettered at once. An
//   error's retry_after_ms (a provider's or an open breaker's hint) is the least wait, capped at
//   max(stage.retry_backoff_max_ms, 60 s).
//
// Threading: run() is called on one thread and owns the consumer; requestStop() and stats()
// may be called from any thread. Start-up faults (bad Kafka properties) throw from the
// constructor; run() returns an error only when the stage cannot start consuming.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ticketflow/config/config.hpp"
#include "ticketflow/core/clock.hpp"
#include "ticketflow/core/result.hpp"
#include "ticketflow/domain/messages.hpp"
#include "ticketflow/kafka/client.hpp"

namespace ticketflow::stage {

// Headers the engine reads and writes.
inline constexpr const char* kTraceIdHeader = "trace-id";
inline constexpr const char* kAttemptHeader = "attempt";  // on outputs: the attempt that made them
inline constexpr const char* kStageHeader = "stage";      // on dead letters
inline constexpr const char* kErrorClassHeader = "error-class";
inline constexpr const char* kAttemptsHeader = "attempts";

// One record a handler asks the engine to produce. An empty key means the input's key (the
// ticket id); headers trace-id and attempt are added unless the handler set them.
struct OutputRecord {
  std::string topic;
  std::string key;
  std::string value;
  std::vector<kafka::Header> headers;
  // Unset: the default partitioner picks by key. Set when the handler must know where the record
  // lands before it is produced (the result writer's exactly-once look-up).
  std::optional<std::int32_t> partition;
};

// What a handler is given: the consumed message, which attempt this is (1 for the first; a
// message held for an outage runs again with the same attempt) and the trace id from the
// message's trace-id header ("" when absent).
struct Delivery {
  kafka::Message message;
  int attempt = 1;
  std::string trace_id;
};

// The handler's one-shot answer. Call succeed() or fail() exactly once, from any thread, now or
// later; later calls are ignored. Copies share the answer. If every copy is destroyed without an
// answer, the attempt fails with a retriable internal error.
//
// `after_ack`, when given, runs on a worker thread once every output is acknowledged and before
// the input counts as done (so the next message of the same key waits for it): the place to
// record "written" markers that make a redelivered message a no-op. It does not run when the
// outputs fail (the attempt is retried) or when shutdown abandons the message.
class Completion {
 public:
  void succeed(std::vector<OutputRecord> outputs = {}, std::function<void()> after_ack = {}) const;
  void fail(Error error) const;
  struct State;
  explicit Completion(std::shared_ptr<State> state) : state_(std::move(state)) {}

 private:
  std::shared_ptr<State> state_;
};

// Runs on a worker thread. Must not block for long: slow work (a model call) should finish
// asynchronously and answer through the Completion. Error.retriable picks retry or dead letter.
using Handler = std::function<void(const std::shared_ptr<const Delivery>&, Completion)>;

struct StageOptions {
  std::string name;  // "intake", "tier:fast", "results": client id and DLQ `stage`
  std::vector<std::string> input_topics;
  std::string group;  // consumer group id
  std::string dlq_topic;
  StageConfig limits;                     // window, threads, retries, commit interval, drain deadline
  kafka::Properties consumer_properties;  // librdkafka overrides (tests shorten session timeouts)
  kafka::Properties producer_properties;
  const Clock* clock = &SystemClock::instance();  // for dead letters' failed_at
  // Where the engine reports rebalances and transport trouble (never message contents); the
  // default writes a plain line to stderr. Called from the poll thread.
  std::function<void(const std::string& text)> log;
  // The handler never blocks: it hands the work on and returns at once (the tier role parses and
  // sends the first admission to its batcher; the result writer parses and queues its marker
  // check), and neither do its after-ack hooks. Call both on the poll thread, sparing thread
  // hand-offs per message.
  bool handler_hands_off = false;
};

struct PartitionStats {
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t in_flight = 0;        // consumed, not done
  std::int64_t next_commit = -1;     // every earlier consumed offset is done
  std::int64_t high_watermark = -1;  // from the last fetch, -1 before one
  std::int64_t lag = -1;             // high_watermark - next_commit, -1 when unknown
  bool paused = false;               // paused by the engine for backpressure or shutdown
};

// One dependency the engine has held messages for (Error::outage names it).
struct OutageStats {
  std::string cause;               // redis, provider, kafka, sink, budget, ...
  std::int64_t held_now = 0;       // messages held for it now; 0 once it is back
  double current_seconds = 0;      // how long the current outage has lasted; 0 when none
  std::string last_error;          // the current outage's latest failure ("" when none)
  std::int64_t probes = 0;         // re-runs scheduled to test it during the current outage
  std::int64_t outages = 0;        // times it went down (a hold began), since start
  std::int64_t held = 0;           // messages ever held for it
  double held_seconds = 0;         // seconds those messages spent held (finished holds)
  std::int64_t dead_lettered = 0;  // held past stage.max_hold_s
};

struct StageStats {
  std::int64_t in_flight = 0;           // messages consumed and not done, all partitions
  std::int64_t max_in_flight_seen = 0;  // the largest in_flight ever reached
  std::int64_t held = 0;                // consumed while the window was full, not started yet
  std::int64_t consumed = 0;
  std::int64_t succeeded = 0;  // done with outputs acknowledged
  std::int64_t dead_lettered = 0;
  std::int64_t retries = 0;
  std::int64_t skipped_done = 0;  // redelivered but listed as done in commit metadata
  std::int64_t abandoned = 0;     // given up at a revoke or shutdown deadline
  std::int64_t commits = 0;
  std::int64_t rebalances = 0;
  std::int64_t backpressure_pauses = 0;  // times the window filled and partitions were paused
  // Times a partition's position was no longer in the log (retention or the broker's size limit
  // removed records before they were consumed), and how many records that skipped.
  std::int64_t offsets_gone = 0;
  std::int64_t records_lost = 0;
  // When an input was last done (succeeded or dead-lettered): a health check's "still moving".
  std::chrono::steady_clock::time_point last_done_at{};
  std::vector<PartitionStats> partitions;
  std::vector<OutageStats> outages;  // every cause met since start
};

class Stage {
 public:
  Stage(const KafkaConfig& kafka, StageOptions options, Handler handler);
  ~Stage();
  Stage(const Stage&) = delete;
  Stage& operator=(const Stage&) = delete;

  // Consumes until requestStop(); then stops fetching, drains in-flight work within
  // stage.drain_deadline_ms, commits and leaves the group.
  Status run();
  void requestStop();
  // A snapshot, refreshed by the poll thread every 20 ms and at exit.
  StageStats stats() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// The dead letter of a consumed message: where it came from, its bytes, why and when it failed.
// `stage_name` is the stage's name, or "results:<sink>" for one sink's write. The ticket id is
// the message's key (up to 128 bytes; a handler that parsed the ticket may set its own).
DeadLetter deadLetterFor(const std::string& stage_name, const Error& error, const Delivery& delivery,
                         const Clock& clock);

// Runs `stage` until SIGTERM, SIGINT or SIGHUP arrives (main() must have called
// blockTerminationSignals() before starting any thread), then stops it as run() describes.
// Returns run()'s status: a role's main exits 0 when it is OK.
Status runUntilTerminated(Stage& stage);

}  // namespace ticketflow::stage
