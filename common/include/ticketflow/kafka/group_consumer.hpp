#pragma once
// The stage engine's two Kafka clients, with librdkafka kept behind them:
// - GroupConsumer: a consumer-group member (cooperative rebalancing, explicit commits with
//   metadata, pause/resume) that reports rebalances and commit results to a listener;
// - AsyncProducer: an idempotent producer whose delivery reports come back tagged, on its own
//   thread.
//
// Threading: GroupConsumer is driven by one thread (the caller of poll()); its listener is called
// on that thread, from inside poll(). wake() and queryWatermarks() may be called from any thread.
// AsyncProducer::produce() may be called from any thread; delivery reports arrive on the
// producer's own poll thread.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "ticketflow/core/result.hpp"
#include "ticketflow/kafka/client.hpp"

namespace ticketflow::kafka {

using TopicPartition = std::pair<std::string, std::int32_t>;

// A partition's first and next offsets (low and high watermarks); -1 when unknown.
struct Watermarks {
  std::int64_t low = -1;
  std::int64_t high = -1;
};

// One partition handed to this member, with what the coordinator holds for it.
struct AssignedPartition {
  TopicPartition partition;
  std::int64_t committed = -1;  // the committed offset; -1 when none (or it could not be read)
  std::string metadata;         // the committed offset's metadata
};

// One offset to commit, with its metadata (the stage lists work done beyond the offset there).
struct OffsetToCommit {
  TopicPartition partition;
  std::int64_t offset = 0;
  std::string metadata;
};

// The coordinator's answer for one partition of a commit.
struct CommitOutcome {
  TopicPartition partition;
  std::int64_t offset = 0;
  std::string metadata;
  bool ok = false;
};

// What the group tells a member. Called on the poll thread, inside GroupConsumer::poll();
// exceptions are caught at the librdkafka edge and logged.
class RebalanceListener {
 public:
  virtual ~RebalanceListener() = default;
  // `partitions` are now assigned (fetching starts at their committed offsets, or at the log
  // start for those the group never committed). `committed_error` is "" or why the committed
  // offsets could not be read (each partition then shows committed = -1).
  virtual void onAssigned(const std::vector<AssignedPartition>& partitions, const std::string& committed_error) = 0;
  // `partitions` are about to be taken away; they are unassigned when this returns. `lost`: the
  // group already gave them to another member (commits would be refused).
  virtual void onRevoking(const std::vector<TopicPartition>& partitions, bool lost) = 0;
  // An asynchronous or synchronous commit was answered. `error` is "" when the request as a
  // whole went through (single partitions may still have failed).
  virtual void onCommitted(const std::vector<CommitOutcome>& outcomes, const std::string& error) = 0;
};

// What one poll found.
struct Polled {
  enum class Kind {
    kNothing,     // the timeout passed, or the poll was woken
    kMessage,     // `message` holds it
    kOffsetGone,  // `partition`'s position is no longer in the log (retention removed it)
    kError,       // a transport or broker error, `error` says which; the consumer goes on
  };
  Kind kind = Kind::kNothing;
  Message message;
  TopicPartition partition;
  std::string error;
};

class GroupConsumer {
 public:
  // Throws std::runtime_error when librdkafka refuses the properties. `log` receives the
  // consumer's own trouble (failed assigns, offset stores); never message contents.
  GroupConsumer(const Properties& properties, RebalanceListener& listener, std::function<void(const std::string&)> log);
  ~GroupConsumer();
  GroupConsumer(const GroupConsumer&) = delete;
  GroupConsumer& operator=(const GroupConsumer&) = delete;

  Status subscribe(const std::vector<std::string>& topics);
  Polled poll(std::chrono::milliseconds timeout);
  // Makes a poll blocked in librdkafka return now. Any thread; a no-op once closed.
  void wake();

  // Stops (resumes) fetching; returns the partitions librdkafka paused (resumed).
  std::vector<TopicPartition> pause(const std::vector<TopicPartition>& partitions);
  std::vector<TopicPartition> resume(const std::vector<TopicPartition>& partitions);
  // Assigns `partition` afresh at the log start: after an offset-gone error its fetcher is stopped
  // and refuses a seek (librdkafka #2961). Returns "" or why it failed.
  std::string restartAtLogStart(const TopicPartition& partition);

  // Stores and commits the offsets; `sync` waits for the answer (which reaches the listener
  // either way). An error means the request was not sent.
  Status commit(const std::vector<OffsetToCommit>& offsets, bool sync);
  // True when the group gave our partitions to another member behind our back.
  bool assignmentLost() const;

  // The watermarks librdkafka learnt from the last fetch of `partition`, if any.
  std::optional<Watermarks> fetchedWatermarks(const TopicPartition& partition) const;
  // Asks the partition's leader (any thread; blocks up to `timeout`). A request to the leader
  // also wakes its fetcher, which librdkafka 2.0.2 otherwise leaves idle for up to a second after
  // a resume (FetchWaker in the stage uses that).
  std::optional<Watermarks> queryWatermarks(const TopicPartition& partition, std::chrono::milliseconds timeout) const;

  // Leaves the group (runs the revoke through the listener). Idempotent; the destructor calls it.
  void close();

 private:
  friend struct GroupConsumerCallbacks;  // librdkafka's C callbacks, in the .cpp
  void assigned(rd_kafka_topic_partition_list_t* parts);
  void revoking(rd_kafka_topic_partition_list_t* parts);
  void releaseQueue();

  RebalanceListener& listener_;
  std::function<void(const std::string&)> log_;
  HandlePtr consumer_;
  // The queue poll() blocks on, yielded by wake(); librdkafka requires it destroyed before
  // rd_kafka_consumer_close(), while another thread may be yielding it.
  mutable std::mutex queue_mutex_;
  QueuePtr queue_;
  bool closed_ = false;
};

// An idempotent producer (acks=all) whose delivery reports come back with the tag given to
// produce(), on a thread of its own.
class AsyncProducer {
 public:
  // `delivered(tag, error)`: the record tagged `tag` was acknowledged (no error) or not.
  using DeliveryReport = std::function<void(std::uint64_t tag, std::optional<Error> error)>;

  // Throws std::runtime_error when librdkafka refuses the properties.
  AsyncProducer(const Properties& properties, DeliveryReport delivered, const std::string& thread_name);
  ~AsyncProducer();  // stops the report thread, then flushes for up to 5 s
  AsyncProducer(const AsyncProducer&) = delete;
  AsyncProducer& operator=(const AsyncProducer&) = delete;

  // Queues one record (`partition` unset: the default partitioner picks by key). A full local
  // queue is waited out for up to a second, as the broker acknowledges. An error means the record
  // was not queued: Error.retriable false for a record the broker can never take (too large,
  // invalid), an outage of "kafka" otherwise.
  std::optional<Error> produce(const std::string& topic, std::optional<std::int32_t> partition, const std::string& key,
                               const std::string& value, const std::vector<Header>& headers, std::uint64_t tag);
  // Waits until every queued record is acknowledged or `timeout` passes.
  void flush(std::chrono::milliseconds timeout);
  // The producer's message.max.bytes.
  std::int64_t maxMessageBytes() const { return max_message_bytes_; }

 private:
  friend struct GroupConsumerCallbacks;

  DeliveryReport delivered_;
  std::int64_t max_message_bytes_ = 1'000'000;  // librdkafka's default
  HandlePtr producer_;
  std::atomic<bool> stop_{false};
  std::thread reports_;
};

// Why the broker did not take a record, as the stage engine treats it: most reasons are the
// broker being away or busy (an outage of "kafka"); a record it will never take is not retriable
// (too large) or the message's own fault (invalid, not authorised).
Error produceError(const std::string& topic, int rd_kafka_err);

}  // namespace ticketflow::kafka
