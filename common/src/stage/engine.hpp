#pragma once
// The stage engine's inside (see stage.hpp for what it promises). One poll thread (the caller of
// run()) owns the consumer and every piece of bookkeeping: partitions, offsets, key queues,
// in-flight items. Worker threads run handlers, the producer thread serves delivery reports and
// the timer thread fires retries; all three talk back to the poll thread only through the
// EventQueue, so the bookkeeping needs no locks.
//
// Its rooms, each in its own file:
//   event_queue.hpp   the channel into the poll thread
//   key_scheduler     same-key messages one at a time, in offset order
//   backpressure      when to stop polling, pause and resume (the window)
//   fetch_waker       watermark queries off the poll thread (librdkafka 2.0.2's idle fetchers)
//   kafka/group_consumer   the consumer and the producer (librdkafka stays in kafka/)
//   stage.cpp         the poll loop, an item's life (admit, run, produce, done) and stats
//   partitions.cpp    rebalances, commits, pause/resume, drains and abandons
//   outages.cpp       retries, holds for an outage, dead letters
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "event_queue.hpp"
#include "fetch_waker.hpp"
#include "ticketflow/core/worker_pool.hpp"
#include "ticketflow/kafka/group_consumer.hpp"
#include "ticketflow/stage/backpressure.hpp"
#include "ticketflow/stage/key_scheduler.hpp"
#include "ticketflow/stage/offset_tracker.hpp"
#include "ticketflow/stage/stage.hpp"
#include "ticketflow/stage/timer.hpp"

namespace ticketflow::stage {

using SteadyTime = std::chrono::steady_clock::time_point;
using kafka::TopicPartition;

// Room for a dead letter's headers and record framing under the producer's message.max.bytes.
inline constexpr std::size_t kDeadLetterHeadroomBytes = 4096;

struct Stage::Impl : kafka::RebalanceListener {
  // kOutageWait: held because a dependency is down (no attempt used), until its probe succeeds.
  enum class ItemState { kQueued, kRunning, kRetryWait, kOutageWait, kProducing, kAfterAck };

  struct Item {
    std::uint64_t id = 0;
    TopicPartition tp;
    std::int64_t offset = 0;
    std::string key;                           // "" when the message has none: then it is not ordered against others
    std::shared_ptr<const Delivery> delivery;  // the current attempt's; shared with the handler
    std::string trace_id;
    int attempt = 0;
    int runs = 0;  // handler runs: attempts plus the re-runs of a held message
    ItemState state = ItemState::kQueued;
    std::string outage;                    // the cause it is held for (waiting or probing); "" when not held
    std::optional<SteadyTime> held_since;  // since it began meeting an outage, for stage.max_hold_s
    SteadyTime outage_since{};             // since its current hold, for the held-seconds total
    int outage_strikes = 0;                // held again while later runs of others went through
    SteadyTime run_began{};                // when its current (or last) run started
    int outputs_pending = 0;
    std::optional<Error> produce_error;
    bool dead_lettering = false;
    DeadLetter dead_letter;    // the DLQ record, kept for a re-produce
    int dead_letter_cuts = 0;  // times its payload was cut because the topic refused its size
    std::string error_class;
    std::function<void()> after_ack;  // the handler's hook, run once its outputs are acknowledged
  };

  struct Partition {
    PartitionOffsets offsets;
    std::int64_t in_flight = 0;
    std::int64_t outage_held = 0;  // items held for an outage: paused while any is
    bool paused_by_us = false;
    bool revoking = false;
    std::int64_t committed = -1;  // acknowledged by the coordinator
    std::string committed_metadata;
    std::int64_t committing = -1;  // sent, no answer yet
    std::string committing_metadata;
    std::int64_t fetched_to = -1;  // the offset after the last one consumed (or the committed one)
  };

  // A cause's hold: while messages are held for it (see outages.cpp).
  struct OutageHold {
    SteadyTime since;
    std::optional<std::uint64_t> probe;  // the held message that runs again to test the cause
    std::deque<std::uint64_t> waiting;   // the others, in the order they were held
    std::chrono::milliseconds backoff{0};
    std::string last_error;
    std::int64_t probes = 0;
  };

  Impl(const KafkaConfig& kafka_config, StageOptions opts, Handler h);
  ~Impl() override;

  void logLine(const std::string& text) const;

  // ---- stage.cpp: the poll loop and an item's life --------------------------------------------
  Status run();
  void consumed(kafka::Message message);
  void admitHeld();
  void admit(kafka::Message message, Partition& partition);
  void start(Item& item, bool rerun = false);  // `rerun`: a held message runs again, same attempt
  void processEvents();
  void produceOutputs(Item& item, std::vector<OutputRecord> outputs);
  void outputsSettled(Item& item);
  void runAfterAck(const std::function<void()>& hook);
  void succeeded(Item& item);
  void finish(Item& item);
  bool mayStart(const Item& item) const;
  void maybePublish();
  void publish();

  // ---- partitions.cpp: rebalances, commits, pause/resume, drains ------------------------------
  void onAssigned(const std::vector<kafka::AssignedPartition>& assigned, const std::string& committed_error) override;
  void onRevoking(const std::vector<TopicPartition>& revoked, bool lost) override;
  void onCommitted(const std::vector<kafka::CommitOutcome>& outcomes, const std::string& error) override;
  void offsetGone(const TopicPartition& tp);
  void shutdown();
  bool releasingWorkActive() const;
  void abandon(const std::function<bool(const Partition&)>& which);
  void drain(const std::function<bool()>& done);
  bool applyBackpressure();  // true while the window is full: the caller must not poll
  void pause(const std::vector<TopicPartition>& which);
  void resumeOurs();
  void resumeIfFree(const TopicPartition& tp);
  void resume(const std::vector<TopicPartition>& which);
  std::vector<TopicPartition> fetchingPartitions() const;
  void maybeCommit();
  void commit(const std::vector<TopicPartition>& which, bool sync, bool force);

  // ---- outages.cpp: retries, holds for an outage, dead letters --------------------------------
  std::chrono::milliseconds backoff(int attempt);
  void scheduleRetry(Item& item, std::chrono::milliseconds at_least = std::chrono::milliseconds(0));
  void failed(Item& item, const Error& error);
  void deadLetter(Item& item, const Error& error);
  bool cutDeadLetter(Item& item);
  void produceDeadLetter(Item& item);
  std::chrono::milliseconds probeBackoffMax() const;
  void holdForOutage(Item& item, const Error& error);
  void giveUpHold(Item& item, const Error& error);
  std::chrono::milliseconds maxHold(const std::string& cause) const;
  void scheduleProbe(Item& item, std::chrono::milliseconds delay);
  std::string unhold(Item& item, bool resolved, SteadyTime now);
  void leaveOutage(Item& item, bool resolved);
  void expireOutageHolds();

  StageOptions options;
  Handler handler;
  std::shared_ptr<EventQueue> events;
  std::mt19937_64 rng;
  std::unique_ptr<kafka::GroupConsumer> consumer;
  std::unique_ptr<kafka::AsyncProducer> producer;
  std::unique_ptr<FetchWaker> fetch_waker;
  std::unique_ptr<WorkerPool> workers;
  std::unique_ptr<TimerQueue> timers = std::make_unique<TimerQueue>();
  std::atomic<bool> stop_requested{false};
  bool stopping = false;
  Backpressure backpressure;

  std::map<TopicPartition, Partition> partitions;
  std::map<std::string, OutageHold> outages;         // by cause, while messages are held for it
  std::map<std::string, OutageStats> outage_totals;  // by cause, since start
  SteadyTime last_success_run_began{};               // the latest start of a run that went through
  SteadyTime next_hold_check_at{};
  std::unordered_map<std::uint64_t, std::unique_ptr<Item>> items;
  KeyScheduler keys;
  std::deque<kafka::Message> held;  // consumed while the window was full, not started yet
  std::int64_t in_flight = 0;
  std::uint64_t next_id = 1;
  SteadyTime next_commit_at{};
  SteadyTime next_publish_at{};
  StageStats stats;

  mutable std::mutex published_mutex;
  StageStats published;
};

}  // namespace ticketflow::stage
