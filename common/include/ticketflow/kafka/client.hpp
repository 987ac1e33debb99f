#pragma once
// RAII ownership of every librdkafka handle, and the small clients built on them. librdkafka
// lives only in common/src/kafka; the rest of the code sees these types.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ticketflow/config/config.hpp"
#include "ticketflow/core/result.hpp"

typedef struct rd_kafka_s rd_kafka_t;
typedef struct rd_kafka_conf_s rd_kafka_conf_t;
typedef struct rd_kafka_message_s rd_kafka_message_t;
typedef struct rd_kafka_topic_partition_list_s rd_kafka_topic_partition_list_t;
typedef struct rd_kafka_mock_cluster_s rd_kafka_mock_cluster_t;
typedef struct rd_kafka_queue_s rd_kafka_queue_t;
typedef struct rd_kafka_error_s rd_kafka_error_t;
typedef struct rd_kafka_headers_s rd_kafka_headers_t;

namespace ticketflow::kafka {

struct HandleDeleter {
  void operator()(rd_kafka_t* rk) const;
};
struct ConfDeleter {
  void operator()(rd_kafka_conf_t* conf) const;
};
struct MessageDeleter {
  void operator()(rd_kafka_message_t* msg) const;
};
struct PartitionListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* list) const;
};
struct QueueDeleter {
  void operator()(rd_kafka_queue_t* queue) const;
};
struct ErrorDeleter {
  void operator()(rd_kafka_error_t* error) const;
};
struct HeadersDeleter {
  void operator()(rd_kafka_headers_t* headers) const;
};
using HandlePtr = std::unique_ptr<rd_kafka_t, HandleDeleter>;
using ConfPtr = std::unique_ptr<rd_kafka_conf_t, ConfDeleter>;
using MessagePtr = std::unique_ptr<rd_kafka_message_t, MessageDeleter>;
using PartitionListPtr = std::unique_ptr<rd_kafka_topic_partition_list_t, PartitionListDeleter>;
using QueuePtr = std::unique_ptr<rd_kafka_queue_t, QueueDeleter>;
using ErrorPtr = std::unique_ptr<rd_kafka_error_t, ErrorDeleter>;
using HeadersPtr = std::unique_ptr<rd_kafka_headers_t, HeadersDeleter>;

// librdkafka properties for one client: the bootstrap servers, the client id and the
// configuration's pass-through map (SASL/TLS), then `overrides`.
using Properties = std::map<std::string, std::string>;
Properties clientProperties(const KafkaConfig& kafka, const std::string& role, const Properties& overrides = {});

// Builds a conf from properties; throws std::invalid_argument naming the bad property.
ConfPtr makeConf(const Properties& properties);

struct Header {
  std::string name;
  std::string value;
};

// A consumed message, copied out of librdkafka's buffer.
struct Message {
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::optional<std::string> key;
  std::string value;
  std::vector<Header> headers;
  std::optional<std::string> header(const std::string& name) const;
};

// Copies a consumed (non-error) message out of librdkafka's buffer.
Message copyMessage(const rd_kafka_message_t* msg);

// Idempotent producer (acks=all, enable.idempotence=true). produceSync waits for the broker's
// acknowledgement. Thread-safe.
class Producer {
 public:
  Producer(const KafkaConfig& kafka, const std::string& role, const Properties& overrides = {});
  ~Producer();
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  Status produceSync(const std::string& topic, const std::string& key, const std::string& value,
                     const std::vector<Header>& headers = {},
                     std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // Produces every (key, value) record without waiting between them, then waits until all are
  // acknowledged; the first failure (or the timeout) is returned. For bulk loads (submit, benches).
  Status produceBatch(const std::string& topic, const std::vector<std::pair<std::string, std::string>>& records,
                      std::chrono::milliseconds timeout = std::chrono::seconds(120));
  // Waits until every queued message is acknowledged or `timeout` passes.
  Status flush(std::chrono::milliseconds timeout);
  rd_kafka_t* handle() const { return rk_.get(); }

 private:
  HandlePtr rk_;
};

// A group consumer of single messages (never the batch API; see docs/stage-runtime.md).
// Offsets are stored explicitly by the caller (enable.auto.offset.store=false). One thread.
class Consumer {
 public:
  Consumer(const KafkaConfig& kafka, const std::string& role, const std::string& group,
           const Properties& overrides = {});
  ~Consumer();
  Consumer(const Consumer&) = delete;
  Consumer& operator=(const Consumer&) = delete;

  Status subscribe(const std::vector<std::string>& topics);
  // The next message, or nullopt on timeout; transport errors come back as errors.
  Result<std::optional<Message>> poll(std::chrono::milliseconds timeout);
  // Stores the offset after `message` and commits synchronously.
  Status commit(const Message& message);
  // Stores the offset after `message` (no commit): many partitions, then one commitStored().
  Status storeOffset(const Message& message);
  Status commitStored();
  // Partitions currently assigned by the group (0 before the first assignment).
  int assignedPartitions() const;
  // Stops (or resumes) fetching from every assigned partition; the assignment stays.
  Status setPaused(bool paused);
  void close();
  rd_kafka_t* handle() const { return rk_.get(); }

 private:
  HandlePtr rk_;
  bool closed_ = false;
};

// The partition librdkafka's default partitioner (consistent_random) gives a record with this
// non-empty key, among `partition_count` partitions.
std::int32_t partitionForKey(const std::string& key, std::int32_t partition_count);

// Reads back what was produced, for "read before you write again" on a topic
// (results.exactly_once): how many partitions a topic has, where a partition ends now (every
// record produced afterwards lands at or beyond it), and whether a record carrying a header
// value lies between an offset and the end. Assign-only (it joins no group, commits nothing).
// One caller at a time.
class RecordFinder {
 public:
  RecordFinder(const KafkaConfig& kafka, const std::string& role);
  ~RecordFinder();
  RecordFinder(const RecordFinder&) = delete;
  RecordFinder& operator=(const RecordFinder&) = delete;

  Result<std::int32_t> partitionCount(const std::string& topic, std::chrono::milliseconds timeout);
  Result<std::int64_t> endOffset(const std::string& topic, std::int32_t partition, std::chrono::milliseconds timeout);
  // Whether a record at or after `from`, up to the partition's end now, carries `header`. Records
  // retention has already removed cannot be read: they count as absent.
  Result<bool> contains(const std::string& topic, std::int32_t partition, std::int64_t from, const Header& header,
                        std::chrono::milliseconds timeout);

 private:
  // The partition's first and next offsets (low and high watermarks), asked of the broker.
  Result<std::pair<std::int64_t, std::int64_t>> watermarks(const std::string& topic, std::int32_t partition,
                                                           std::chrono::milliseconds timeout);
  HandlePtr rk_;
};

// Creates topics (idempotent: an existing topic is fine). Uses the admin API.
Status createTopics(const KafkaConfig& kafka, const std::vector<std::string>& topics, int partitions,
                    std::chrono::milliseconds timeout = std::chrono::seconds(10));

// Every topic named by the configuration: inbound, each tier, results, updates, dlq.
std::vector<std::string> configuredTopics(const Config& config);

// librdkafka's mock cluster: a real Kafka wire-protocol broker on loopback, in this process.
// Not durable, and it keeps only the newest 5 MiB of each partition (rdkafka_mock.c): whatever
// is not consumed by then is gone, so a producer of a large backlog must stay within it.
class MockBroker {
 public:
  static constexpr std::size_t kPartitionRetentionBytes = std::size_t{5} << 20;

  explicit MockBroker(int brokers = 1);
  ~MockBroker();
  MockBroker(const MockBroker&) = delete;
  MockBroker& operator=(const MockBroker&) = delete;

  const std::string& bootstrapServers() const { return bootstrap_; }
  Status createTopic(const std::string& topic, int partitions);

 private:
  HandlePtr rk_;
  rd_kafka_mock_cluster_t* cluster_ = nullptr;  // owned; destroyed before rk_
  std::string bootstrap_;
};

}  // namespace ticketflow::kafka
