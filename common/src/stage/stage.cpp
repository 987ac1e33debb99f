// The stage engine. One poll thread (the caller of run()) owns the consumer and every piece of
// bookkeeping: partitions, offsets, key queues, in-flight items. Worker threads run handlers,
// the producer thread serves delivery reports and the timer thread fires retries; all three
// talk back to the poll thread only through the EventQueue, so the bookkeeping needs no locks.
#include "ticketflow/stage/stage.hpp"

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include <utility>

#include <librdkafka/rdkafka.h>

#include "ticketflow/core/check.hpp"
#include "ticketflow/core/crypto.hpp"
#include "ticketflow/core/signals.hpp"
#include "ticketflow/core/thread_name.hpp"
#include "ticketflow/core/worker_pool.hpp"
#include "ticketflow/domain/messages.hpp"
#include "ticketflow/stage/offset_tracker.hpp"
#include "ticketflow/stage/timer.hpp"

namespace ticketflow::stage {

namespace {

using SteadyTime = std::chrono::steady_clock::time_point;
using TopicPartition = std::pair<std::string, std::int32_t>;

enum class EventKind { kHandlerDone, kProduced, kRetryDue, kAfterAckDone, kProbeDue };

struct Event {
  EventKind kind = EventKind::kHandlerDone;
  std::uint64_t item = 0;
  int run = 0;  // kHandlerDone: which run of the item answered (a held message runs again)
  std::vector<OutputRecord> outputs;
  std::function<void()> after_ack;
  std::optional<Error> error;
};

// The only channel into the poll thread. push() wakes a poll blocked in librdkafka by yielding
// the consumer queue, so completions are handled at once rather than after the poll timeout.
class EventQueue {
 public:
  void push(Event event) {
    std::lock_guard lock(mutex_);
    const bool was_empty = events_.empty();
    events_.push_back(std::move(event));
    if (was_empty) {
      ready_.notify_one();
      if (wake_) rd_kafka_queue_yield(wake_);
    }
  }
  std::vector<Event> take() {
    std::lock_guard lock(mutex_);
    std::vector<Event> out;
    out.swap(events_);
    return out;
  }
  bool empty() const {
    std::lock_guard lock(mutex_);
    return events_.empty();
  }
  void waitFor(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    ready_.wait_for(lock, timeout, [this] { return !events_.empty(); });
  }
  void setWake(rd_kafka_queue_t* queue) {
    std::lock_guard lock(mutex_);
    wake_ = queue;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::vector<Event> events_;
  rd_kafka_queue_t* wake_ = nullptr;
};

std::string errText(rd_kafka_resp_err_t err) {
  return rd_kafka_err2str(err);
}

// A produce the broker did not take. Most reasons are the broker being away or busy (an outage:
// held until it takes messages again); a record it will never take (too large, invalid, not
// authorised) is the message's own fault and uses its attempts.
Error produceError(const std::string& topic, rd_kafka_resp_err_t err) {
  const std::string text = "produce to " + topic + ": " + errText(err);
  switch (err) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
      // The same record is as large next time: no attempt can succeed (kafka.max_message_bytes).
      return Error(ErrorCode::kInvalidArgument,
                   text + " (over the message size limit: kafka.max_message_bytes, or the topic's max.message.bytes)",
                   false, -1);
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
      return Error(ErrorCode::kInvalidArgument, text, true, -1);
    default:
      return Error::unavailable(text).asOutage("kafka");
  }
}

// Room for a dead letter's headers and record framing under the producer's message.max.bytes.
constexpr std::size_t kDeadLetterHeadroomBytes = 4096;

void writeLog(const std::string& stage, const std::string& text) {
  std::fprintf(stderr, "stage %s: %s\n", stage.c_str(), text.c_str());
}

}  // namespace

struct Completion::State {
  std::shared_ptr<EventQueue> events;
  std::uint64_t item = 0;
  int run = 0;
  std::atomic<bool> answered{false};

  void answer(Event event) {
    if (answered.exchange(true)) return;
    event.kind = EventKind::kHandlerDone;
    event.item = item;
    event.run = run;
    events->push(std::move(event));
  }
  ~State() {
    Event e;
    e.error = Error{ErrorCode::kInternal, "handler dropped its completion without answering", true};
    answer(std::move(e));
  }
};

void Completion::succeed(std::vector<OutputRecord> outputs, std::function<void()> after_ack) const {
  Event e;
  e.outputs = std::move(outputs);
  e.after_ack = std::move(after_ack);
  state_->answer(std::move(e));
}

void Completion::fail(Error error) const {
  Event e;
  e.error = std::move(error);
  state_->answer(std::move(e));
}

struct Stage::Impl {
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

  Impl(const KafkaConfig& kafka_config, StageOptions opts, Handler h)
      : options(std::move(opts)),
        handler(std::move(h)),
        events(std::make_shared<EventQueue>()),
        rng(std::random_device{}()) {
    if (options.input_topics.empty()) throw std::invalid_argument("stage " + options.name + ": no input topics");
    if (options.limits.max_in_flight < 1) throw std::invalid_argument("stage.max_in_flight must be at least 1");
    if (options.limits.worker_threads < 1) throw std::invalid_argument("stage.worker_threads must be at least 1");
    const std::string role = "stage-" + options.name;

    kafka::Properties cp = kafka::clientProperties(kafka_config, role,
                                                   {{"group.id", options.group},
                                                    {"enable.auto.offset.store", "false"},
                                                    {"enable.auto.commit", "false"},
                                                    // A committed offset the log no longer holds
                                                    // (retention, a size limit) is an error we
                                                    // count and log (offsetGone), never a silent
                                                    // skip; a group without one starts at the log
                                                    // start (onAssign says so explicitly).
                                                    {"auto.offset.reset", "error"},
                                                    {"enable.partition.eof", "false"},
                                                    {"partition.assignment.strategy", "cooperative-sticky"},
                                                    // Prefetch is bounded: the window holds the
                                                    // work, and more queued here is only memory
                                                    // (2 MiB: same throughput as 16, 18 MiB less
                                                    // RSS in bench pipeline's five consumers).
                                                    {"queued.max.messages.kbytes", "2048"}});
    for (const auto& [k, v] : options.consumer_properties) cp[k] = v;
    kafka::ConfPtr cconf = kafka::makeConf(cp);
    rd_kafka_conf_set_opaque(cconf.get(), this);
    rd_kafka_conf_set_rebalance_cb(cconf.get(), &Impl::rebalanceCallback);
    rd_kafka_conf_set_offset_commit_cb(cconf.get(), &Impl::commitCallback);
    char err[512];
    rd_kafka_t* c = rd_kafka_new(RD_KAFKA_CONSUMER, cconf.get(), err, sizeof err);
    if (!c) throw std::runtime_error(std::string("cannot create Kafka consumer: ") + err);
    (void)cconf.release();
    consumer.reset(c);
    rd_kafka_poll_set_consumer(c);
    consumer_queue = rd_kafka_queue_get_consumer(c);
    events->setWake(consumer_queue);
    try {
      startProducerAndThreads(kafka_config, role);
    } catch (...) {  // a failed start leaves no queue or group membership behind
      releaseConsumerQueue();
      rd_kafka_consumer_close(c);
      closed = true;
      throw;
    }
  }

  void startProducerAndThreads(const KafkaConfig& kafka_config, const std::string& role) {
    char err[512];
    kafka::Properties pp = kafka::clientProperties(
        kafka_config, role, {{"enable.idempotence", "true"}, {"acks", "all"}, {"linger.ms", "5"}});
    for (const auto& [k, v] : options.producer_properties) pp[k] = v;
    kafka::ConfPtr pconf = kafka::makeConf(pp);
    if (auto it = pp.find("message.max.bytes"); it != pp.end()) max_message_bytes = std::stoll(it->second);
    rd_kafka_conf_set_opaque(pconf.get(), events.get());
    rd_kafka_conf_set_dr_msg_cb(pconf.get(), &Impl::deliveryCallback);
    rd_kafka_t* p = rd_kafka_new(RD_KAFKA_PRODUCER, pconf.get(), err, sizeof err);
    if (!p) throw std::runtime_error(std::string("cannot create Kafka producer: ") + err);
    (void)pconf.release();
    producer.reset(p);

    workers = std::make_unique<WorkerPool>(options.limits.worker_threads, "tf-work-" + options.name);
    waker = std::thread([this] {
      nameThisThread("tf-wake-" + options.name);
      wakerLoop();
    });
    producer_thread = std::thread([this] {
      nameThisThread("tf-dr-" + options.name);
      while (!producer_stop.load()) rd_kafka_poll(producer.get(), 50);
    });
  }

  ~Impl() {
    {
      std::lock_guard lock(waker_mutex);
      waker_stop = true;
    }
    waker_ready.notify_one();
    waker.join();
    workers->stop();
    timers.reset();
    producer_stop = true;
    producer_thread.join();
    if (producer) rd_kafka_flush(producer.get(), 5000);
    releaseConsumerQueue();
    if (consumer && !closed) rd_kafka_consumer_close(consumer.get());
  }

  // librdkafka requires the queue from rd_kafka_queue_get_consumer() to be destroyed before
  // rd_kafka_consumer_close(); requestStop() may be yielding it from another thread meanwhile.
  void releaseConsumerQueue() {
    events->setWake(nullptr);
    std::lock_guard lock(consumer_queue_mutex);
    if (consumer_queue) rd_kafka_queue_destroy(consumer_queue);
    consumer_queue = nullptr;
  }

  void wakePoll() {
    std::lock_guard lock(consumer_queue_mutex);
    if (consumer_queue) rd_kafka_queue_yield(consumer_queue);
  }

  // ---- callbacks from librdkafka -----------------------------------------------------------

  // No exception may unwind through librdkafka's C frames: each callback catches at its edge.
  static void deliveryCallback(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque) {
    try {
      Event e;
      e.kind = EventKind::kProduced;
      e.item = reinterpret_cast<std::uintptr_t>(msg->_private);
      if (msg->err) e.error = produceError(rd_kafka_topic_name(msg->rkt), msg->err);
      static_cast<EventQueue*>(opaque)->push(std::move(e));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "stage: delivery report lost: %s\n", e.what());
    }
  }

  static void rebalanceCallback(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts,
                                void* opaque) {
    auto* self = static_cast<Impl*>(opaque);
    try {
      if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        self->onAssign(parts);
      } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        self->onRevoke(parts);
      } else {
        self->logLine("rebalance error: " + errText(err));
        if (rd_kafka_error_t* e = rd_kafka_incremental_unassign(rk, parts)) rd_kafka_error_destroy(e);
      }
    } catch (const std::exception& e) {
      // The partitions' work is redone by whoever owns them next: nothing is committed here.
      std::fprintf(stderr, "stage %s: rebalance handling threw: %s\n", self->options.name.c_str(), e.what());
    }
  }

  // Commit results arrive on the poll thread. Only an acknowledged commit counts: a failed one
  // (a commit racing a rebalance gets ILLEGAL_GENERATION) is sent again at the next chance.
  static void commitCallback(rd_kafka_t*, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* offsets,
                             void* opaque) {
    try {
      static_cast<Impl*>(opaque)->onCommitted(err, offsets);
    } catch (const std::exception& e) {  // the next commit sends the offsets again
      std::fprintf(stderr, "stage: commit result lost: %s\n", e.what());
    }
  }

  void onCommitted(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* offsets) {
    Impl* self = this;
    if (err == RD_KAFKA_RESP_ERR__NO_OFFSET || !offsets) return;
    int failed = 0;
    for (int i = 0; i < offsets->cnt; ++i) {
      const auto& o = offsets->elems[i];
      auto it = self->partitions.find({o.topic, o.partition});
      if (it == self->partitions.end()) continue;
      it->second.committing = -1;
      if (err || o.err) {
        ++failed;
        continue;
      }
      ++self->stats.commits;
      it->second.committed = o.offset;
      it->second.committed_metadata =
          o.metadata ? std::string(static_cast<const char*>(o.metadata), o.metadata_size) : std::string();
    }
    if (failed)
      self->logLine("commit failed for " + std::to_string(failed) +
                    " partition(s): " + errText(err ? err : offsets->elems[0].err) + "; retried at the next commit");
  }

  void logLine(const std::string& text) const {
    if (options.log) {
      options.log(text);
    } else {
      writeLog(options.name, text);
    }
  }

  void onAssign(rd_kafka_topic_partition_list_t* parts) {
    ++stats.rebalances;
    logLine("assigned " + std::to_string(parts->cnt) + " partition(s)");
    // Committed offsets and metadata, so work finished beyond the committed offset is skipped.
    kafka::PartitionListPtr committed(rd_kafka_topic_partition_list_copy(parts));
    const rd_kafka_resp_err_t cerr = rd_kafka_committed(consumer.get(), committed.get(), 10000);
    if (cerr)
      logLine("reading committed offsets failed (" + errText(cerr) + "); finished work beyond them will be redone");
    for (int i = 0; i < parts->cnt; ++i) {
      const auto& p = parts->elems[i];
      std::int64_t offset = -1;
      bool never_committed = false;  // the coordinator says so (not: we could not ask)
      std::set<std::int64_t> done;
      if (!cerr) {
        const auto* c = rd_kafka_topic_partition_list_find(committed.get(), p.topic, p.partition);
        never_committed = c && c->err == RD_KAFKA_RESP_ERR_NO_ERROR && c->offset < 0;
        if (c && c->err == RD_KAFKA_RESP_ERR_NO_ERROR && c->offset >= 0) {
          offset = c->offset;
          if (c->metadata && c->metadata_size > 0) {
            auto decoded = PartitionOffsets::decodeMetadata(
                std::string(static_cast<const char*>(c->metadata), c->metadata_size), offset);
            if (decoded) done = std::move(*decoded);
          }
        }
      }
      Partition state;
      state.offsets = PartitionOffsets(offset, std::move(done));
      state.committed = offset;
      state.fetched_to = offset;
      partitions[{p.topic, p.partition}] = std::move(state);
      // No committed offset: start at the log start. (Unset, auto.offset.reset=error would stop.)
      if (never_committed) parts->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    if (rd_kafka_error_t* e = rd_kafka_incremental_assign(consumer.get(), parts)) {
      logLine(std::string("incremental assign failed: ") + rd_kafka_error_string(e));
      rd_kafka_error_destroy(e);
    }
    if (paused_all || stopping) pause(keysOf(parts));
  }

  void onRevoke(rd_kafka_topic_partition_list_t* parts) {
    ++stats.rebalances;
    const bool lost = rd_kafka_assignment_lost(consumer.get()) != 0;
    logLine((lost ? "lost " : "revoked ") + std::to_string(parts->cnt) + " partition(s)");
    std::vector<TopicPartition> revoked = keysOf(parts);
    for (const auto& tp : revoked)
      if (auto it = partitions.find(tp); it != partitions.end()) it->second.revoking = true;
    // Messages consumed but never started are simply left for the next owner.
    std::erase_if(held, [this](const kafka::Message& m) {
      auto it = partitions.find({m.topic, m.partition});
      return it == partitions.end() || it->second.revoking;
    });
    // Running handlers and unacknowledged outputs get until the deadline; queued and retrying
    // messages are not started again and are left to the next owner.
    if (!lost) drain([this] { return !releasingWorkActive(); });
    abandon([](const Partition& p) { return p.revoking; });
    if (!lost) commit(revoked, /*sync=*/true, /*force=*/true);
    if (rd_kafka_error_t* e = rd_kafka_incremental_unassign(consumer.get(), parts)) {
      logLine(std::string("incremental unassign failed: ") + rd_kafka_error_string(e));
      rd_kafka_error_destroy(e);
    }
    // Pause state goes with the partition: it is never resumed by us once released.
    for (const auto& tp : revoked) partitions.erase(tp);
  }

  static std::vector<TopicPartition> keysOf(const rd_kafka_topic_partition_list_t* parts) {
    std::vector<TopicPartition> out;
    for (int i = 0; i < parts->cnt; ++i) out.emplace_back(parts->elems[i].topic, parts->elems[i].partition);
    return out;
  }

  // ---- the poll loop ----------------------------------------------------------------------

  Status run() {
    {
      kafka::PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(options.input_topics.size())));
      for (const auto& t : options.input_topics)
        rd_kafka_topic_partition_list_add(list.get(), t.c_str(), RD_KAFKA_PARTITION_UA);
      const rd_kafka_resp_err_t err = rd_kafka_subscribe(consumer.get(), list.get());
      if (err) return Error::unavailable("subscribe: " + errText(err));
    }
    next_commit_at = std::chrono::steady_clock::now() + commitInterval();
    while (!stop_requested.load()) {
      processEvents();
      expireOutageHolds();
      admitHeld();
      const bool window_full = applyBackpressure();
      maybeCommit();
      maybePublish();
      if (window_full) {
        events->waitFor(std::chrono::milliseconds(5));
        continue;
      }
      const int timeout_ms = events->empty() ? 50 : 0;
      kafka::MessagePtr msg(rd_kafka_consumer_poll(consumer.get(), timeout_ms));
      if (!msg) {
        wakeDrainedFetcher();
        continue;
      }
      ++messages_since_empty_poll;
      if (msg->err) {
        if (msg->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET && msg->rkt) {
          offsetGone(rd_kafka_topic_name(msg->rkt), msg->partition);
        } else if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
          logLine(std::string("consume: ") + rd_kafka_message_errstr(msg.get()));
        }
        continue;
      }
      consumed(kafka::copyMessage(msg.get()));
    }
    shutdown();
    return {};
  }

  void shutdown() {
    stopping = true;
    std::vector<TopicPartition> all;
    for (auto& [tp, p] : partitions) {
      all.push_back(tp);
      p.revoking = true;  // no new work anywhere
    }
    pause(all);  // stop fetching
    held.clear();
    drain([this] { return !releasingWorkActive(); });
    abandon([](const Partition&) { return true; });
    commit(all, /*sync=*/true, /*force=*/true);
    // Leaving the group runs the revoke callback, which finds nothing left to do.
    releaseConsumerQueue();
    rd_kafka_consumer_close(consumer.get());
    closed = true;
    rd_kafka_flush(producer.get(), options.limits.drain_deadline_ms);
    publish();
  }

  // The partition's position is not in the log any more: the records between it and the log start
  // were removed before anyone processed them (retention, or the broker's size limit). They are
  // gone; what can be done is to say so loudly and go on from the log start.
  void offsetGone(const std::string& topic, std::int32_t partition) {
    auto it = partitions.find({topic, partition});
    if (it == partitions.end()) return;
    Partition& p = it->second;
    const std::string where = topic + "[" + std::to_string(partition) + "]";
    if (p.fetched_to < 0) {  // no position known: reading the committed offset failed, and there is none
      logLine(where + ": no committed offset; starting at the log start");
    } else {
      std::int64_t low = -1, high = -1;
      const rd_kafka_resp_err_t err =
          rd_kafka_query_watermark_offsets(consumer.get(), topic.c_str(), partition, &low, &high, 5000);
      const std::int64_t lost = err || low < p.fetched_to ? -1 : low - p.fetched_to;
      ++stats.offsets_gone;
      if (lost > 0) stats.records_lost += lost;
      logLine(where + ": offset " + std::to_string(p.fetched_to) + " is no longer in the log (retention or the " +
              "broker's size limit removed it): " +
              (lost >= 0 ? std::to_string(lost) : std::string("an unknown number of")) +
              " records were never processed; going on from the log start" +
              (err ? "" : " (" + std::to_string(low) + ")"));
    }
    // After this error the partition's fetcher is stopped and refuses a seek (librdkafka #2961):
    // it is assigned afresh, at the log start.
    kafka::PartitionListPtr list(rd_kafka_topic_partition_list_new(1));
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), partition)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_error_t* e = rd_kafka_incremental_unassign(consumer.get(), list.get());
    if (!e) e = rd_kafka_incremental_assign(consumer.get(), list.get());
    if (e) {
      logLine(where + ": restarting at the log start failed: " + rd_kafka_error_string(e));
      rd_kafka_error_destroy(e);
    }
    if (p.paused_by_us) {  // a fresh assignment fetches: pause it again
      p.paused_by_us = false;
      pause({{topic, partition}});
    }
  }

  void consumed(kafka::Message message) {
    ++stats.consumed;
    auto it = partitions.find({message.topic, message.partition});
    if (it == partitions.end() || it->second.revoking) return;  // no longer ours: the next owner redoes it
    it->second.fetched_to = std::max(it->second.fetched_to, message.offset + 1);
    if (in_flight >= options.limits.max_in_flight || !held.empty()) {
      held.push_back(std::move(message));  // arrived before the pause took effect
      return;
    }
    admit(std::move(message), it->second);
  }

  void admitHeld() {
    while (!held.empty() && in_flight < options.limits.max_in_flight) {
      kafka::Message m = std::move(held.front());
      held.pop_front();
      auto it = partitions.find({m.topic, m.partition});
      if (it == partitions.end() || it->second.revoking) continue;
      admit(std::move(m), it->second);
    }
  }

  void admit(kafka::Message message, Partition& partition) {
    if (partition.offsets.track(message.offset)) {
      ++stats.skipped_done;
      return;
    }
    auto item = std::make_unique<Item>();
    item->id = next_id++;
    item->tp = {message.topic, message.partition};
    item->offset = message.offset;
    item->key = message.key.value_or("");
    item->trace_id = message.header(kTraceIdHeader).value_or("");
    auto delivery = std::make_shared<Delivery>();
    delivery->message = std::move(message);
    delivery->trace_id = item->trace_id;
    item->delivery = std::move(delivery);
    ++partition.in_flight;
    ++in_flight;
    if (in_flight > stats.max_in_flight_seen) stats.max_in_flight_seen = in_flight;
    Item* raw = item.get();
    items.emplace(raw->id, std::move(item));
    if (raw->key.empty()) {
      start(*raw);
      return;
    }
    auto& queue = key_queues[raw->key];
    queue.push_back(raw->id);
    if (queue.size() == 1) start(*raw);
  }

  // `rerun`: a held message runs again after its outage, with the same attempt number.
  void start(Item& item, bool rerun = false) {
    if (!rerun) ++item.attempt;
    ++item.runs;
    item.state = ItemState::kRunning;
    item.run_began = std::chrono::steady_clock::now();
    if (item.runs > 1) {
      // The handler may still hold the previous run's delivery: give this one its own.
      auto again = std::make_shared<Delivery>(*item.delivery);
      again->attempt = item.attempt;
      item.delivery = std::move(again);
    }
    auto state = std::make_shared<Completion::State>();
    state->events = events;
    state->item = item.id;
    state->run = item.runs;
    auto run = [this, d = item.delivery, c = Completion(std::move(state))] {
      try {
        handler(d, c);
      } catch (const std::exception& e) {
        c.fail(Error::internal(std::string("handler threw: ") + e.what()));
      }
    };
    if (options.handler_hands_off)
      run();
    else
      workers->submit(std::move(run));
  }

  void processEvents() {
    for (Event& e : events->take()) {
      auto it = items.find(e.item);
      if (it == items.end()) continue;  // abandoned, or a late answer
      Item& item = *it->second;
      switch (e.kind) {
        case EventKind::kHandlerDone:
          if (item.state != ItemState::kRunning || item.runs != e.run) break;
          // A probe that got past its outage ends the hold: the dependency is back. For the
          // broker that is known only once it acknowledges the outputs (outputsSettled).
          if (!item.outage.empty() && (e.error ? e.error->outage != item.outage : item.outage != "kafka"))
            leaveOutage(item, true);
          if (e.error) {
            failed(item, *e.error);
          } else {
            item.after_ack = std::move(e.after_ack);
            produceOutputs(item, std::move(e.outputs));
          }
          break;
        case EventKind::kAfterAckDone:
          if (item.state != ItemState::kAfterAck) break;
          succeeded(item);
          break;
        case EventKind::kRetryDue:
          if (item.state != ItemState::kRetryWait || !mayStart(item)) break;
          if (item.dead_lettering) {
            produceDeadLetter(item);
          } else {
            start(item);
          }
          break;
        case EventKind::kProbeDue:
          if (item.state != ItemState::kOutageWait || !mayStart(item)) break;
          start(item, /*rerun=*/true);
          break;
        case EventKind::kProduced:
          if (item.state != ItemState::kProducing) break;
          if (e.error) item.produce_error = e.error;
          if (--item.outputs_pending == 0) outputsSettled(item);
          break;
      }
    }
  }

  std::chrono::milliseconds backoff(int attempt) {
    const auto& l = options.limits;
    double d = l.retry_backoff_initial_ms;
    for (int i = 1; i < attempt && d < l.retry_backoff_max_ms; ++i) d *= 2;
    if (d > l.retry_backoff_max_ms) d = l.retry_backoff_max_ms;
    // "Equal jitter": half fixed, half random, so retries of many keys spread out.
    std::uniform_real_distribution<double> jitter(0.5, 1.0);
    return std::chrono::milliseconds(static_cast<std::int64_t>(d * jitter(rng)));
  }

  // `at_least`: a server's or breaker's retry-after, capped so a bogus hint cannot park a message.
  void scheduleRetry(Item& item, std::chrono::milliseconds at_least = std::chrono::milliseconds(0)) {
    item.state = ItemState::kRetryWait;
    const std::uint64_t id = item.id;
    auto queue = events;
    const auto hint =
        std::min(at_least, std::chrono::milliseconds(std::max(options.limits.retry_backoff_max_ms, 60'000)));
    timers->schedule(std::max(backoff(item.attempt), hint), [queue, id] {
      Event e;
      e.kind = EventKind::kRetryDue;
      e.item = id;
      queue->push(std::move(e));
    });
  }

  void failed(Item& item, const Error& error) {
    if (!error.outage.empty()) return holdForOutage(item, error);
    if (error.retriable && item.attempt < options.limits.max_attempts) {
      ++stats.retries;
      scheduleRetry(item, std::chrono::milliseconds(std::max<std::int64_t>(0, error.retry_after_ms)));
      return;
    }
    deadLetter(item, error);
  }

  void deadLetter(Item& item, const Error& error) {
    item.dead_lettering = true;
    item.dead_letter = deadLetterFor(options.name, error, *item.delivery, *options.clock);
    item.error_class = errorCodeName(error.code);
    // A letter over our own limit is cut before librdkafka refuses it; the topic may refuse less.
    // The key travels twice: as the record's key and inside the letter.
    while (toJson(item.dead_letter).size() + item.dead_letter.key.size() + kDeadLetterHeadroomBytes >
               static_cast<std::size_t>(max_message_bytes) &&
           cutDeadLetter(item)) {
    }
    produceDeadLetter(item);
  }

  // A dead letter the topic refuses for its size keeps less of its payload each time (the
  // reference, the reason and the start of the payload always fit), so its offset advances.
  bool cutDeadLetter(Item& item) {
    static constexpr std::size_t kPayloadSteps[] = {64 * 1024, 1024, 0};
    if (item.dead_letter_cuts >= static_cast<int>(std::size(kPayloadSteps))) return false;
    truncatePayload(item.dead_letter, kPayloadSteps[item.dead_letter_cuts++]);
    return true;
  }

  // ---- outages ----------------------------------------------------------------------------
  //
  // A failure that names an outage (Error::outage: redis, provider, kafka, ...) is not the
  // message's fault, so it uses no attempt. The message is held; its partition pauses while it
  // holds any, so nothing new piles up behind the outage. One held message per cause is the
  // probe: it runs again after a capped, doubling backoff (or the error's retry-after hint), and
  // when it gets past the outage every message held for that cause runs again, in key order.
  // stage.max_hold_s may bound a cause's hold; past it the message is dead-lettered, naming it.

  struct OutageHold {
    SteadyTime since;
    std::optional<std::uint64_t> probe;  // the held message that runs again to test the cause
    std::deque<std::uint64_t> waiting;   // the others, in the order they were held
    std::chrono::milliseconds backoff{0};
    std::string last_error;
    std::int64_t probes = 0;
  };

  std::chrono::milliseconds probeBackoffMax() const {
    return std::chrono::milliseconds(std::max(options.limits.outage_probe_max_ms, 1));
  }

  void holdForOutage(Item& item, const Error& error) {
    const auto now = std::chrono::steady_clock::now();
    const std::string& cause = error.outage;
    if (!item.held_since) item.held_since = now;
    if (const auto max = maxHold(cause); max.count() > 0 && now - *item.held_since >= max) {
      Error e = error;
      e.message = "held " +
                  std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now - *item.held_since).count()) +
                  " s for " + cause + " (stage.max_hold_s." + cause + "): " + error.message;
      ++outage_totals[cause].dead_lettered;
      return giveUpHold(item, e);
    }
    // The probe met "its" outage again although a message whose run began after this one was
    // held went through: the dependency was up for that one, so the fault is likely this
    // message's (a prompt that always times out, a reply the broker refuses). After max_attempts
    // such strikes it is dead-lettered, so it cannot hold its partition (and its cause) for ever.
    // (Runs that began before an outage and finish during it prove nothing, hence "began after".)
    // Not for a sink: an update that other sinks took says nothing about the one that is down
    // (stage.max_hold_s.sink bounds that wait).
    if (cause != "sink" && item.outage == cause && last_success_run_began > item.outage_since &&
        ++item.outage_strikes >= options.limits.max_attempts) {
      Error e = error;
      e.outage.clear();
      e.message = "failed as an outage of " + cause + " " + std::to_string(item.outage_strikes) +
                  " times while other messages went through: " + error.message;
      return giveUpHold(item, e);
    }
    auto [hit, fresh] = outages.try_emplace(cause);
    OutageHold& hold = hit->second;
    if (fresh) {
      hold.since = now;
      hold.backoff =
          std::min(std::chrono::milliseconds(std::max(options.limits.retry_backoff_initial_ms, 50)), probeBackoffMax());
      ++outage_totals[cause].outages;
      logLine("holding messages: " + cause + " unavailable (" + error.message.substr(0, 300) +
              "); their partitions pause until it is back");
    }
    hold.last_error = error.message.substr(0, 500);
    if (item.outage.empty()) {
      item.outage = cause;
      item.outage_since = now;
      ++outage_totals[cause].held;
      if (auto pit = partitions.find(item.tp); pit != partitions.end() && ++pit->second.outage_held == 1)
        pause({item.tp});
    }
    item.state = ItemState::kOutageWait;
    const auto hint = std::chrono::milliseconds(std::clamp<std::int64_t>(error.retry_after_ms, 0, 60'000));
    if (hold.probe == item.id) {  // the probe met the outage again
      hold.backoff = std::min(hold.backoff * 2, probeBackoffMax());
      // The next held message probes next time: one message that fails for its own reasons
      // must not keep the others held once the dependency is back.
      if (!hold.waiting.empty()) {
        hold.waiting.push_back(item.id);
        hold.probe = hold.waiting.front();
        hold.waiting.pop_front();
      }
      scheduleProbe(*items.at(*hold.probe), std::max(hold.backoff, hint));
    } else if (!hold.probe) {
      hold.probe = item.id;
      scheduleProbe(item, std::max(hold.backoff, hint));
    } else {
      hold.waiting.push_back(item.id);
    }
  }

  // A held (or failing) message leaves its hold for good: dead-lettered with `error`.
  void giveUpHold(Item& item, const Error& error) {
    if (!item.outage.empty()) leaveOutage(item, false);
    item.held_since.reset();
    deadLetter(item, error);
  }

  std::chrono::milliseconds maxHold(const std::string& cause) const {
    auto it = options.limits.max_hold_s.find(cause);
    return it == options.limits.max_hold_s.end() ? std::chrono::milliseconds(0)
                                                 : std::chrono::milliseconds(it->second * 1000);
  }

  void scheduleProbe(Item& item, std::chrono::milliseconds delay) {
    ++outages.at(item.outage).probes;
    auto queue = events;
    timers->schedule(delay, [queue, id = item.id] {
      Event e;
      e.kind = EventKind::kProbeDue;
      e.item = id;
      queue->push(std::move(e));
    });
  }

  // `item` leaves its cause's hold: its probe got past it (`resolved`: every message held for
  // the cause runs again), or it is dead-lettered or abandoned (the next held one probes).
  // `item` is no longer held: its held seconds counted, its partition resumed when it held no other.
  std::string unhold(Item& item, bool resolved, SteadyTime now) {
    std::string cause = std::exchange(item.outage, std::string());
    outage_totals[cause].held_seconds += std::chrono::duration<double>(now - item.outage_since).count();
    if (resolved) item.held_since.reset();  // stage.max_hold_s counts each episode on its own
    if (auto pit = partitions.find(item.tp); pit != partitions.end() && --pit->second.outage_held == 0)
      resumeIfFree(item.tp);
    return cause;
  }

  void leaveOutage(Item& item, bool resolved) {
    const auto now = std::chrono::steady_clock::now();
    const std::string cause = unhold(item, resolved, now);
    auto hit = outages.find(cause);
    if (hit == outages.end()) return;
    OutageHold& hold = hit->second;
    if (hold.probe != item.id) {
      std::erase(hold.waiting, item.id);
    } else if (resolved) {
      std::deque<std::uint64_t> waiting = std::move(hold.waiting);
      logLine(cause + " is back after " +
              std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now - hold.since).count()) + " s; " +
              std::to_string(waiting.size() + 1) + " held message(s) go on");
      outages.erase(hit);
      for (std::uint64_t id : waiting) {
        auto it = items.find(id);
        if (it == items.end() || it->second->state != ItemState::kOutageWait) continue;
        Item& held_item = *it->second;
        unhold(held_item, /*resolved=*/true, now);
        if (mayStart(held_item)) start(held_item, /*rerun=*/true);
      }
      return;
    } else {
      hold.probe.reset();
      while (!hold.waiting.empty() && !hold.probe) {
        const std::uint64_t next = hold.waiting.front();
        hold.waiting.pop_front();
        auto it = items.find(next);
        if (it == items.end() || it->second->state != ItemState::kOutageWait) continue;
        hold.probe = next;
        scheduleProbe(*it->second, hold.backoff);
      }
    }
    if (!hold.probe && hold.waiting.empty()) outages.erase(hit);
  }

  // Dead-letters held messages past their cause's stage.max_hold_s (checked every second).
  void expireOutageHolds() {
    const auto now = std::chrono::steady_clock::now();
    if (outages.empty() || now < next_hold_check_at) return;
    next_hold_check_at = now + std::chrono::seconds(1);
    std::vector<std::pair<std::uint64_t, Error>> expired;
    for (const auto& entry : outages) {
      const std::string& cause = entry.first;  // named, not bound: clang 14 cannot capture bindings
      const auto& hold = entry.second;
      const auto max = maxHold(cause);
      if (max.count() <= 0) continue;
      auto check = [&](std::uint64_t id) {
        auto it = items.find(id);
        if (it != items.end() && it->second->held_since && now - *it->second->held_since >= max)
          expired.emplace_back(id, Error::unavailable(hold.last_error).asOutage(cause));
      };
      if (hold.probe) check(*hold.probe);
      for (std::uint64_t id : hold.waiting) check(id);
    }
    for (auto& [id, error] : expired) {
      auto it = items.find(id);
      if (it == items.end() || it->second->state != ItemState::kOutageWait) continue;
      holdForOutage(*it->second, error);  // past its limit: dead-lettered, naming the cause
    }
  }

  void produceDeadLetter(Item& item) {
    std::vector<OutputRecord> out(1);
    out[0].topic = options.dlq_topic;
    out[0].value = toJson(item.dead_letter);
    // The letter's own key: cut with its payload when the letter had to shrink. (An empty key
    // falls back to the message's, which is then empty too.)
    out[0].key = item.dead_letter.key;
    out[0].headers = {{kStageHeader, options.name},
                      {kErrorClassHeader, item.error_class},
                      {kAttemptsHeader, std::to_string(item.attempt)}};
    produceOutputs(item, std::move(out));
  }

  void produceOutputs(Item& item, std::vector<OutputRecord> outputs) {
    item.state = ItemState::kProducing;
    item.produce_error.reset();
    item.outputs_pending = 0;
    if (outputs.empty()) {
      outputsSettled(item);
      return;
    }
    const std::string attempt = std::to_string(item.attempt);
    int issued = 0;
    for (OutputRecord& out : outputs) {
      const std::string& key = out.key.empty() ? item.key : out.key;
      bool has_trace = false, has_attempt = false;
      for (const auto& h : out.headers) {
        has_trace = has_trace || h.name == kTraceIdHeader;
        has_attempt = has_attempt || h.name == kAttemptHeader;
      }
      // Only a well-formed trace id is carried on: a header of any size would ride on every output.
      if (!has_trace && isTraceId(item.trace_id)) out.headers.push_back({kTraceIdHeader, item.trace_id});
      if (!has_attempt) out.headers.push_back({kAttemptHeader, attempt});
      rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
      // A full local queue drains as the broker acknowledges; wait briefly rather than fail.
      for (int tries = 0; tries < 1000; ++tries) {
        rd_kafka_headers_t* hdrs = rd_kafka_headers_new(out.headers.size());
        for (const auto& h : out.headers)
          rd_kafka_header_add(hdrs, h.name.data(), static_cast<ssize_t>(h.name.size()), h.value.data(),
                              static_cast<ssize_t>(h.value.size()));
        err = rd_kafka_producev(
            producer.get(), RD_KAFKA_V_TOPIC(out.topic.c_str()),
            RD_KAFKA_V_PARTITION(out.partition.value_or(RD_KAFKA_PARTITION_UA)), RD_KAFKA_V_KEY(key.data(), key.size()),
            RD_KAFKA_V_VALUE(out.value.data(), out.value.size()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(reinterpret_cast<void*>(static_cast<std::uintptr_t>(item.id))),
            RD_KAFKA_V_END);
        if (!err) break;
        rd_kafka_headers_destroy(hdrs);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      if (err) {
        item.produce_error = produceError(out.topic, err);
        break;
      }
      ++issued;
    }
    item.outputs_pending = issued;
    if (issued == 0) outputsSettled(item);
  }

  void outputsSettled(Item& item) {
    if (item.produce_error) {
      logLine(item.produce_error->message);
      // Outputs that did reach the broker are produced again on the retry: at-least-once.
      if (item.dead_lettering) {
        // Too large for the topic: smaller at once. Anything else: the topic is unavailable.
        if (!item.produce_error->retriable && cutDeadLetter(item)) {
          produceDeadLetter(item);
        } else {
          scheduleRetry(item);
        }
      } else {
        failed(item, *item.produce_error);
      }
      return;
    }
    // A message held because the broker did not take its outputs is through once it has.
    if (item.outage == "kafka") leaveOutage(item, true);
    if (item.dead_lettering) {
      ++stats.dead_lettered;
      stats.last_done_at = std::chrono::steady_clock::now();
      finish(item);
      return;
    }
    if (item.after_ack && options.handler_hands_off) {
      // A handler that never blocks has hooks that never block: run here, sparing two hand-offs.
      runAfterAck(item.after_ack);
      item.after_ack = nullptr;
    }
    if (item.after_ack) {
      // The hook runs off the poll thread; the item (and so its key's next message) waits for it.
      item.state = ItemState::kAfterAck;
      auto queue = events;
      workers->submit([this, hook = std::move(item.after_ack), queue, id = item.id] {
        runAfterAck(hook);
        Event done;
        done.kind = EventKind::kAfterAckDone;
        done.item = id;
        queue->push(std::move(done));
      });
      item.after_ack = nullptr;
      return;
    }
    succeeded(item);
  }

  void runAfterAck(const std::function<void()>& hook) {
    try {
      hook();
    } catch (const std::exception& e) {
      logLine(std::string("after-ack hook threw: ") + e.what());
    }
  }

  void succeeded(Item& item) {
    ++stats.succeeded;
    stats.last_done_at = std::chrono::steady_clock::now();
    last_success_run_began = std::max(last_success_run_began, item.run_began);
    finish(item);
  }

  void finish(Item& item) {
    auto pit = partitions.find(item.tp);
    if (pit != partitions.end()) {
      pit->second.offsets.complete(item.offset);
      --pit->second.in_flight;
    }
    --in_flight;
    std::string key = item.key;
    items.erase(item.id);  // `item` is gone from here on
    if (!key.empty()) {
      auto kit = key_queues.find(key);
      TF_CHECK(kit != key_queues.end() && !kit->second.empty(), "finished item missing from its key queue");
      kit->second.pop_front();
      if (kit->second.empty()) {
        key_queues.erase(kit);
      } else {
        Item& next = *items.at(kit->second.front());
        if (mayStart(next)) start(next);
      }
    }
  }

  // New work starts only in partitions we keep: not in ones being revoked or at shutdown.
  bool mayStart(const Item& item) const {
    auto it = partitions.find(item.tp);
    return it != partitions.end() && !it->second.revoking;
  }

  // True while a handler runs or outputs are unacknowledged in a partition being released.
  bool releasingWorkActive() const {
    for (const auto& [id, item] : items) {
      if (item->state != ItemState::kRunning && item->state != ItemState::kProducing &&
          item->state != ItemState::kAfterAck)
        continue;
      auto it = partitions.find(item->tp);
      if (it == partitions.end() || it->second.revoking) return true;
    }
    return false;
  }

  // Gives up on in-flight items of the partitions matching `which`: their offsets stay
  // uncommitted, so the partition's next owner (or our restart) redoes them.
  template <typename Pred>
  void abandon(Pred which) {
    std::vector<std::uint64_t> ids;
    for (const auto& [id, item] : items) {
      auto pit = partitions.find(item->tp);
      if (pit == partitions.end() || which(pit->second)) ids.push_back(id);
    }
    std::set<std::string> keys;
    for (std::uint64_t id : ids) {
      auto it = items.find(id);
      Item& item = *it->second;
      if (!item.outage.empty()) leaveOutage(item, false);
      if (auto pit = partitions.find(item.tp); pit != partitions.end()) --pit->second.in_flight;
      --in_flight;
      ++stats.abandoned;
      if (!item.key.empty()) {
        auto& q = key_queues[item.key];
        std::erase(q, id);
        keys.insert(item.key);
      }
      items.erase(it);
    }
    for (const auto& key : keys) {
      auto kit = key_queues.find(key);
      if (kit->second.empty()) {
        key_queues.erase(kit);
        continue;
      }
      Item& front = *items.at(kit->second.front());
      if (front.state == ItemState::kQueued && mayStart(front)) start(front);
    }
  }

  // Handles events until `done()` or the drain deadline (stage.drain_deadline_ms).
  template <typename Done>
  void drain(Done done) {
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(options.limits.drain_deadline_ms);
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      events->waitFor(std::chrono::milliseconds(20));
      processEvents();
    }
  }

  // ---- backpressure -----------------------------------------------------------------------

  // A full window first just stops polling: completions usually free room within milliseconds,
  // and pausing costs a purge of the prefetched messages and a refetch. Only a window that stays
  // full for kPauseGrace pauses the partitions (so nothing is fetched while handlers are slow),
  // and they are resumed once the window has drained by a sixteenth.
  static constexpr std::chrono::milliseconds kPauseGrace{100};

  // Returns true while the window is full, when the caller must not poll for messages.
  bool applyBackpressure() {
    const std::int64_t window = options.limits.max_in_flight;
    const std::int64_t load = in_flight + static_cast<std::int64_t>(held.size());
    if (paused_all) {
      if (load <= window - std::max<std::int64_t>(1, window / 16)) {
        paused_all = false;
        full_since.reset();
        resumeOurs();
      }
      return false;  // paused: polling only serves rebalances (and rare stragglers go to `held`)
    }
    if (load < window) {
      full_since.reset();
      return false;
    }
    const auto now = std::chrono::steady_clock::now();
    if (!full_since) full_since = now;
    if (now - *full_since < kPauseGrace) return true;
    paused_all = true;
    ++stats.backpressure_pauses;
    std::vector<TopicPartition> all;
    for (const auto& [tp, p] : partitions) all.push_back(tp);
    pause(all);
    return false;
  }

  void pause(const std::vector<TopicPartition>& which) {
    kafka::PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(which.size())));
    for (const auto& tp : which) {
      auto it = partitions.find(tp);
      if (it == partitions.end() || it->second.paused_by_us) continue;
      rd_kafka_topic_partition_list_add(list.get(), tp.first.c_str(), tp.second);
    }
    if (list->cnt == 0) return;
    rd_kafka_pause_partitions(consumer.get(), list.get());
    for (int i = 0; i < list->cnt; ++i) {
      if (list->elems[i].err) continue;
      partitions[{list->elems[i].topic, list->elems[i].partition}].paused_by_us = true;
    }
  }

  // Resumes exactly the partitions this engine paused, never one paused by someone else, and
  // none that still holds a message for an outage.
  void resumeOurs() {
    kafka::PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size())));
    for (auto& [tp, p] : partitions)
      if (p.paused_by_us && !p.revoking && p.outage_held == 0)
        rd_kafka_topic_partition_list_add(list.get(), tp.first.c_str(), tp.second);
    resume(list.get());
  }

  // A partition whose last held message went on resumes, unless backpressure keeps it paused.
  void resumeIfFree(const TopicPartition& tp) {
    auto it = partitions.find(tp);
    if (it == partitions.end() || !it->second.paused_by_us || it->second.revoking || paused_all || stopping ||
        it->second.outage_held > 0)
      return;
    kafka::PartitionListPtr list(rd_kafka_topic_partition_list_new(1));
    rd_kafka_topic_partition_list_add(list.get(), tp.first.c_str(), tp.second);
    resume(list.get());
  }

  void resume(rd_kafka_topic_partition_list_t* list) {
    if (list->cnt == 0) return;
    rd_kafka_resume_partitions(consumer.get(), list);
    for (int i = 0; i < list->cnt; ++i)
      if (!list->elems[i].err) partitions[{list->elems[i].topic, list->elems[i].partition}].paused_by_us = false;
    // One query per resume: more would pile up behind fetches and slow them.
    wakeFetcher({list->elems[0].topic, list->elems[0].partition});
  }

  // librdkafka 2.0.2 does not wake a broker thread whose partitions were all paused when they
  // are resumed: it refetches only on its next 1 s tick, which capped a full window at one
  // refill per second. Any request to the partition leader wakes that thread at once, so a
  // helper thread sends a watermark query to `tp`'s leader (it may queue behind a fetch; the
  // poll thread must not wait for it).
  void wakeFetcher(TopicPartition tp) {
    {
      std::lock_guard lock(waker_mutex);
      waker_partition = std::move(tp);
    }
    waker_ready.notify_one();
  }

  // librdkafka 2.0.2 also stops fetching a partition whose local queue reached
  // queued.max.messages.kbytes, and looks at it again only on the same 1 s tick, not when the
  // queue drains: a busy stage (big messages, a full prefetch) then took a refill per second
  // (bench pipeline ran at 1,500 instead of 2,100 tickets/s in about half the runs). So a poll
  // that finds the queue empty right after a run of messages (a drained prefetch, not a trickle)
  // wakes the fetcher, at most every 20 ms.
  void wakeDrainedFetcher() {
    const std::int64_t run = std::exchange(messages_since_empty_poll, 0);
    if (run < kDrainedRun || paused_all || partitions.empty()) return;
    const auto now = std::chrono::steady_clock::now();
    if (now < next_drained_wake_at) return;
    next_drained_wake_at = now + std::chrono::milliseconds(20);
    // One partition per wake, the next one each time: with several brokers, each partition
    // leader's fetcher is woken in turn.
    std::vector<TopicPartition> fetching;
    for (const auto& [tp, p] : partitions)
      if (!p.paused_by_us && !p.revoking) fetching.push_back(tp);
    if (!fetching.empty()) wakeFetcher(fetching[drained_wakes++ % fetching.size()]);
  }

  void wakerLoop() {
    std::unique_lock lock(waker_mutex);
    while (true) {
      waker_ready.wait(lock, [this] { return waker_stop || waker_partition.has_value() || !watermark_wanted.empty(); });
      if (waker_stop) return;
      std::optional<TopicPartition> wake;
      wake.swap(waker_partition);
      std::set<TopicPartition> wanted;
      wanted.swap(watermark_wanted);
      lock.unlock();
      std::int64_t low = 0, high = 0;
      if (wake) rd_kafka_query_watermark_offsets(consumer.get(), wake->first.c_str(), wake->second, &low, &high, 1000);
      std::map<TopicPartition, Watermarks> found;
      for (const auto& tp : wanted)
        if (rd_kafka_query_watermark_offsets(consumer.get(), tp.first.c_str(), tp.second, &low, &high, 1000) == 0)
          found[tp] = {low, high};
      lock.lock();
      for (const auto& [tp, w] : found) queried_watermarks[tp] = w;
    }
  }

  struct Watermarks {
    std::int64_t low = -1;
    std::int64_t high = -1;
  };

  // The watermarks librdkafka learnt from the last fetch, or else the last ones the waker
  // thread queried (a partition paused before its first fetch has none); -1 when unknown.
  Watermarks watermarks(const TopicPartition& tp, bool& ask) {
    Watermarks w;
    if (rd_kafka_get_watermark_offsets(consumer.get(), tp.first.c_str(), tp.second, &w.low, &w.high) == 0 &&
        w.high >= 0 && w.low >= 0)
      return w;
    ask = true;
    std::lock_guard lock(waker_mutex);
    auto it = queried_watermarks.find(tp);
    return it == queried_watermarks.end() ? Watermarks{} : it->second;
  }

  // ---- offsets ----------------------------------------------------------------------------

  std::chrono::milliseconds commitInterval() const {
    return std::chrono::milliseconds(options.limits.commit_interval_ms);
  }

  void maybeCommit() {
    const auto now = std::chrono::steady_clock::now();
    if (now < next_commit_at) return;
    next_commit_at = now + commitInterval();
    std::vector<TopicPartition> all;
    for (const auto& [tp, p] : partitions) all.push_back(tp);
    commit(all, /*sync=*/false, /*force=*/false);
  }

  // Stores and commits the contiguous done offset of each partition, with the done offsets
  // beyond it as metadata. Skipped when the assignment was lost: those partitions already
  // belong to another member.
  void commit(const std::vector<TopicPartition>& which, bool sync, bool force) {
    if (rd_kafka_assignment_lost(consumer.get())) return;
    kafka::PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(which.size())));
    for (const auto& tp : which) {
      auto it = partitions.find(tp);
      if (it == partitions.end()) continue;
      Partition& p = it->second;
      const std::int64_t next = p.offsets.nextCommit();
      if (next < 0) continue;
      std::string metadata = p.offsets.metadata();
      if (!force && ((next == p.committed && metadata == p.committed_metadata) ||
                     (next == p.committing && metadata == p.committing_metadata)))
        continue;
      p.committing = next;
      p.committing_metadata = metadata;
      rd_kafka_topic_partition_t* e = rd_kafka_topic_partition_list_add(list.get(), tp.first.c_str(), tp.second);
      e->offset = next;
      if (!metadata.empty()) {
        // The list owns its elements' metadata and frees it with the list.
        e->metadata = std::malloc(metadata.size());
        std::memcpy(e->metadata, metadata.data(), metadata.size());
        e->metadata_size = metadata.size();
      }
    }
    if (list->cnt == 0) return;
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(consumer.get(), list.get());
    if (err) logLine("offset store: " + errText(err));
    err = rd_kafka_commit(consumer.get(), list.get(), sync ? 0 : 1);
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
      logLine("commit: " + errText(err));
      return;
    }
  }

  // ---- stats ------------------------------------------------------------------------------

  void maybePublish() {
    const auto now = std::chrono::steady_clock::now();
    if (now < next_publish_at) return;
    next_publish_at = now + std::chrono::milliseconds(20);
    publish();
  }

  void publish() {
    StageStats s = stats;
    s.in_flight = in_flight;
    const auto now_steady = std::chrono::steady_clock::now();
    for (const auto& [cause, totals] : outage_totals) {
      OutageStats o = totals;
      o.cause = cause;
      if (auto it = outages.find(cause); it != outages.end()) {
        o.held_now = static_cast<std::int64_t>(it->second.waiting.size()) + (it->second.probe ? 1 : 0);
        o.current_seconds = std::chrono::duration<double>(now_steady - it->second.since).count();
        o.last_error = it->second.last_error;
        o.probes = it->second.probes;
      }
      s.outages.push_back(std::move(o));
    }
    s.held = static_cast<std::int64_t>(held.size());
    std::set<TopicPartition> unknown;
    for (const auto& [tp, p] : partitions) {
      PartitionStats ps;
      ps.topic = tp.first;
      ps.partition = tp.second;
      ps.in_flight = p.in_flight;
      ps.next_commit = p.offsets.nextCommit();
      ps.paused = p.paused_by_us;
      bool ask = false;
      const Watermarks w = watermarks(tp, ask);
      if (ask) unknown.insert(tp);
      if (w.high >= 0) {
        ps.high_watermark = w.high;
        // Nothing consumed or committed yet: the group starts at the log start (earliest).
        const std::int64_t position = ps.next_commit >= 0 ? ps.next_commit : w.low;
        if (position >= 0) ps.lag = std::max<std::int64_t>(0, w.high - position);
      }
      s.partitions.push_back(std::move(ps));
    }
    const auto now = std::chrono::steady_clock::now();
    if (!unknown.empty() && now >= next_watermark_query_at) {
      next_watermark_query_at = now + std::chrono::seconds(1);
      {
        std::lock_guard lock(waker_mutex);
        watermark_wanted = std::move(unknown);
      }
      waker_ready.notify_one();
    }
    std::lock_guard lock(published_mutex);
    published = std::move(s);
  }

  StageOptions options;
  std::int64_t max_message_bytes = 1'000'000;  // the producer's message.max.bytes (librdkafka's default)
  Handler handler;
  std::shared_ptr<EventQueue> events;
  std::mt19937_64 rng;
  kafka::HandlePtr consumer;
  std::mutex consumer_queue_mutex;
  rd_kafka_queue_t* consumer_queue = nullptr;
  kafka::HandlePtr producer;
  std::unique_ptr<WorkerPool> workers;
  std::unique_ptr<TimerQueue> timers = std::make_unique<TimerQueue>();
  std::thread producer_thread;
  std::thread waker;
  std::mutex waker_mutex;
  std::condition_variable waker_ready;
  std::optional<TopicPartition> waker_partition;
  bool waker_stop = false;
  std::set<TopicPartition> watermark_wanted;
  std::map<TopicPartition, Watermarks> queried_watermarks;
  SteadyTime next_watermark_query_at{};
  std::atomic<bool> producer_stop{false};
  std::atomic<bool> stop_requested{false};
  bool closed = false;
  bool stopping = false;
  bool paused_all = false;
  std::optional<SteadyTime> full_since;
  // Messages polled since the last empty poll; a run this long means the prefetch was full.
  static constexpr std::int64_t kDrainedRun = 32;
  std::int64_t messages_since_empty_poll = 0;
  std::size_t drained_wakes = 0;
  SteadyTime next_drained_wake_at{};

  std::map<TopicPartition, Partition> partitions;
  std::map<std::string, OutageHold> outages;         // by cause, while messages are held for it
  std::map<std::string, OutageStats> outage_totals;  // by cause, since start
  SteadyTime last_success_run_began{};               // the latest start of a run that went through
  SteadyTime next_hold_check_at{};
  std::unordered_map<std::uint64_t, std::unique_ptr<Item>> items;
  std::unordered_map<std::string, std::deque<std::uint64_t>> key_queues;
  std::deque<kafka::Message> held;
  std::int64_t in_flight = 0;
  std::uint64_t next_id = 1;
  SteadyTime next_commit_at{};
  SteadyTime next_publish_at{};
  StageStats stats;

  mutable std::mutex published_mutex;
  StageStats published;
};

Stage::Stage(const KafkaConfig& kafka, StageOptions options, Handler handler)
    : impl_(std::make_unique<Impl>(kafka, std::move(options), std::move(handler))) {}

Stage::~Stage() = default;

Status Stage::run() {
  return impl_->run();
}

void Stage::requestStop() {
  impl_->stop_requested = true;
  impl_->wakePoll();
}

StageStats Stage::stats() const {
  std::lock_guard lock(impl_->published_mutex);
  return impl_->published;
}

DeadLetter deadLetterFor(const std::string& stage_name, const Error& error, const Delivery& delivery,
                         const Clock& clock) {
  const kafka::Message& m = delivery.message;
  DeadLetter d;
  d.stage = stage_name;
  d.error_class = error.code;
  d.error = utf8Prefix(error.message, 4000);
  d.attempts = delivery.attempt;
  d.topic = m.topic;
  d.partition = m.partition;
  d.offset = m.offset;
  d.key = m.key.value_or("");
  d.payload = m.value;
  if (d.key.size() <= 128) d.ticket_id = d.key;
  if (isTraceId(delivery.trace_id)) d.trace_id = delivery.trace_id;
  d.failed_at = formatRfc3339(clock.now());
  return d;
}

Status runUntilTerminated(Stage& stage) {
  std::atomic<bool> finished{false};
  std::thread waiter([&] {
    while (!finished.load()) {
      if (waitForTerminationSignal(std::chrono::milliseconds(200))) {
        stage.requestStop();
        return;
      }
    }
  });
  Status status = stage.run();
  finished = true;
  waiter.join();
  return status;
}

}  // namespace ticketflow::stage
