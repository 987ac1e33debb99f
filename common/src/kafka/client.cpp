#include "ticketflow/kafka/client.hpp"

#include <atomic>
#include <stdexcept>

#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <nlohmann/json.hpp>

#include "handles.hpp"
#include "ticketflow/core/check.hpp"
#include "ticketflow/core/clock.hpp"

namespace ticketflow::kafka {

void HandleDeleter::operator()(rd_kafka_t* rk) const {
  rd_kafka_destroy(rk);
}
void ConfDeleter::operator()(rd_kafka_conf_t* conf) const {
  rd_kafka_conf_destroy(conf);
}
void MessageDeleter::operator()(rd_kafka_message_t* msg) const {
  rd_kafka_message_destroy(msg);
}
void PartitionListDeleter::operator()(rd_kafka_topic_partition_list_t* list) const {
  rd_kafka_topic_partition_list_destroy(list);
}

void QueueDeleter::operator()(rd_kafka_queue_t* queue) const {
  rd_kafka_queue_destroy(queue);
}
void ErrorDeleter::operator()(rd_kafka_error_t* error) const {
  rd_kafka_error_destroy(error);
}
void HeadersDeleter::operator()(rd_kafka_headers_t* headers) const {
  rd_kafka_headers_destroy(headers);
}

HandlePtr makeHandle(rd_kafka_type_t type, ConfPtr conf) {
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(type, conf.get(), err, sizeof err);
  if (!rk) throw std::runtime_error(std::string("cannot create Kafka client: ") + err);
  (void)conf.release();  // rd_kafka_new took ownership
  return HandlePtr(rk);
}

HeadersPtr makeHeaders(const std::vector<Header>& headers) {
  HeadersPtr out(rd_kafka_headers_new(headers.size()));
  for (const auto& h : headers)
    rd_kafka_header_add(out.get(), h.name.data(), static_cast<ssize_t>(h.name.size()), h.value.data(),
                        static_cast<ssize_t>(h.value.size()));
  return out;
}

namespace {

// The delivery outcome of one produceSync call, shared by the waiter and the callback so that a
// waiter that timed out never leaves the callback writing to freed memory.
constexpr int kPending = -12345;
using DeliveryState = std::shared_ptr<std::atomic<int>>;

void deliveryReport(rd_kafka_t*, const rd_kafka_message_t* msg, void*) {
  if (auto* state = static_cast<DeliveryState*>(msg->_private)) {
    (*state)->store(msg->err);
    delete state;
  }
}

}  // namespace

Properties clientProperties(const KafkaConfig& kafka, const std::string& role, const Properties& overrides) {
  Properties p = {{"bootstrap.servers", kafka.bootstrap_servers},
                  {"client.id", kafka.client_id + "-" + role},
                  {"message.max.bytes", std::to_string(kafka.max_message_bytes)}};
  for (const auto& [k, v] : kafka.properties) p[k] = v;
  for (const auto& [k, v] : overrides) p[k] = v;
  return p;
}

namespace {

// librdkafka's own messages (broker down, retries) as JSON lines like ours, not plain text.
void logAsJson(const rd_kafka_t* rk, int level, const char* facility, const char* text) {
  const char* name = level <= 3 ? "error" : level == 4 ? "warn" : level <= 6 ? "info" : "debug";
  const nlohmann::json line = {{"time", formatRfc3339(SystemClock::instance().now())},
                               {"level", name},
                               {"role", "librdkafka"},
                               {"event", "kafka"},
                               {"client", rk ? rd_kafka_name(rk) : ""},
                               {"facility", facility ? facility : ""},
                               {"detail", text ? text : ""}};
  const std::string out = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  (void)!::write(STDERR_FILENO, out.data(), out.size());  // one write: lines never interleave
}

}  // namespace

ConfPtr makeConf(const Properties& properties) {
  ConfPtr conf(rd_kafka_conf_new());
  rd_kafka_conf_set_log_cb(conf.get(), &logAsJson);
  char err[512];
  for (const auto& [k, v] : properties) {
    if (rd_kafka_conf_set(conf.get(), k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK)
      throw std::invalid_argument("Kafka property '" + k + "': " + err);
  }
  return conf;
}

std::optional<std::string> Message::header(const std::string& name) const {
  for (auto it = headers.rbegin(); it != headers.rend(); ++it)
    if (it->name == name) return it->value;
  return std::nullopt;
}

Message copyMessage(const rd_kafka_message_t* msg) {
  Message m;
  m.topic = rd_kafka_topic_name(msg->rkt);
  m.partition = msg->partition;
  m.offset = msg->offset;
  if (msg->key) m.key = std::string(static_cast<const char*>(msg->key), msg->key_len);
  if (msg->payload) m.value.assign(static_cast<const char*>(msg->payload), msg->len);
  rd_kafka_headers_t* hdrs = nullptr;
  if (rd_kafka_message_headers(const_cast<rd_kafka_message_t*>(msg), &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    const char* name;
    const void* value;
    size_t size;
    for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; ++i)
      m.headers.push_back({name, value ? std::string(static_cast<const char*>(value), size) : std::string()});
  }
  return m;
}

Producer::Producer(const KafkaConfig& kafka, const std::string& role, const Properties& overrides) {
  Properties p = clientProperties(kafka, role, {{"enable.idempotence", "true"}, {"acks", "all"}, {"linger.ms", "5"}});
  for (const auto& [k, v] : overrides) p[k] = v;
  ConfPtr conf = makeConf(p);
  rd_kafka_conf_set_dr_msg_cb(conf.get(), deliveryReport);
  rk_ = makeHandle(RD_KAFKA_PRODUCER, std::move(conf));
}

Producer::~Producer() {
  if (rk_) rd_kafka_flush(rk_.get(), 10000);
}

Status Producer::produceSync(const std::string& topic, const std::string& key, const std::string& value,
                             const std::vector<Header>& headers, std::chrono::milliseconds timeout) {
  HeadersPtr hdrs = makeHeaders(headers);
  auto state = std::make_shared<std::atomic<int>>(kPending);
  auto* opaque = new DeliveryState(state);
  const rd_kafka_resp_err_t err = rd_kafka_producev(
      rk_.get(), RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_KEY(key.data(), key.size()),
      RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
      RD_KAFKA_V_HEADERS(hdrs.get()), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
  if (err) {
    delete opaque;
    return Error::unavailable(std::string("produce to ") + topic + " failed: " + rd_kafka_err2str(err));
  }
  (void)hdrs.release();  // the produced message owns them now
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (state->load() == kPending) {
    rd_kafka_poll(rk_.get(), 20);
    if (std::chrono::steady_clock::now() > deadline)
      return Error::timeout("produce to " + topic + " not acknowledged in time");
  }
  const auto result = static_cast<rd_kafka_resp_err_t>(state->load());
  if (result != RD_KAFKA_RESP_ERR_NO_ERROR)
    return Error::unavailable(std::string("produce to ") + topic + " failed: " + rd_kafka_err2str(result));
  return {};
}

Status Producer::produceBatch(const std::string& topic, const std::vector<std::pair<std::string, std::string>>& records,
                              std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<DeliveryState> states;
  states.reserve(records.size());
  for (const auto& [key, value] : records) {
    auto state = std::make_shared<std::atomic<int>>(kPending);
    while (true) {
      auto* opaque = new DeliveryState(state);
      const rd_kafka_resp_err_t err =
          rd_kafka_producev(rk_.get(), RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_KEY(key.data(), key.size()),
                            RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
      if (!err) break;
      delete opaque;
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || std::chrono::steady_clock::now() > deadline)
        return Error::unavailable(std::string("produce to ") + topic + " failed: " + rd_kafka_err2str(err));
      rd_kafka_poll(rk_.get(), 50);  // the local queue is full: let deliveries drain it
    }
    states.push_back(std::move(state));
  }
  for (const auto& state : states) {
    while (state->load() == kPending) {
      if (std::chrono::steady_clock::now() > deadline)
        return Error::timeout("produce to " + topic + " not acknowledged in time");
      rd_kafka_poll(rk_.get(), 20);
    }
    if (state->load() != RD_KAFKA_RESP_ERR_NO_ERROR)
      return Error::unavailable(std::string("produce to ") + topic +
                                " failed: " + rd_kafka_err2str(static_cast<rd_kafka_resp_err_t>(state->load())));
  }
  return {};
}

Status Producer::flush(std::chrono::milliseconds timeout) {
  const rd_kafka_resp_err_t err = rd_kafka_flush(rk_.get(), static_cast<int>(timeout.count()));
  if (err) return Error::timeout(std::string("flush: ") + rd_kafka_err2str(err));
  return {};
}

Consumer::Consumer(const KafkaConfig& kafka, const std::string& role, const std::string& group,
                   const Properties& overrides) {
  Properties p = clientProperties(kafka, role,
                                  {{"group.id", group},
                                   {"enable.auto.offset.store", "false"},
                                   {"enable.auto.commit", "false"},
                                   {"auto.offset.reset", "earliest"},
                                   {"partition.assignment.strategy", "cooperative-sticky"}});
  for (const auto& [k, v] : overrides) p[k] = v;
  rk_ = makeHandle(RD_KAFKA_CONSUMER, makeConf(p));
  rd_kafka_poll_set_consumer(rk_.get());
}

Consumer::~Consumer() {
  close();
}

void Consumer::close() {
  if (closed_ || !rk_) return;
  closed_ = true;
  rd_kafka_consumer_close(rk_.get());
}

Status Consumer::subscribe(const std::vector<std::string>& topics) {
  PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(topics.size())));
  for (const auto& t : topics) rd_kafka_topic_partition_list_add(list.get(), t.c_str(), RD_KAFKA_PARTITION_UA);
  const rd_kafka_resp_err_t err = rd_kafka_subscribe(rk_.get(), list.get());
  if (err) return Error::unavailable(std::string("subscribe: ") + rd_kafka_err2str(err));
  return {};
}

Result<std::optional<Message>> Consumer::poll(std::chrono::milliseconds timeout) {
  MessagePtr msg(rd_kafka_consumer_poll(rk_.get(), static_cast<int>(timeout.count())));
  if (!msg) return std::optional<Message>();
  if (msg->err) {
    if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) return std::optional<Message>();
    return Error::unavailable(std::string("consume: ") + rd_kafka_message_errstr(msg.get()));
  }
  return std::optional<Message>(copyMessage(msg.get()));
}

Status Consumer::commit(const Message& message) {
  PartitionListPtr list(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(list.get(), message.topic.c_str(), message.partition)->offset = message.offset + 1;
  rd_kafka_resp_err_t err = rd_kafka_offsets_store(rk_.get(), list.get());
  if (err) return Error::unavailable(std::string("offset store: ") + rd_kafka_err2str(err));
  err = rd_kafka_commit(rk_.get(), nullptr, /*async=*/0);
  if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
    return Error::unavailable(std::string("commit: ") + rd_kafka_err2str(err));
  return {};
}

Status Consumer::storeOffset(const Message& message) {
  PartitionListPtr list(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(list.get(), message.topic.c_str(), message.partition)->offset = message.offset + 1;
  const rd_kafka_resp_err_t err = rd_kafka_offsets_store(rk_.get(), list.get());
  if (err) return Error::unavailable(std::string("offset store: ") + rd_kafka_err2str(err));
  return {};
}

Status Consumer::commitStored() {
  const rd_kafka_resp_err_t err = rd_kafka_commit(rk_.get(), nullptr, /*async=*/0);
  if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
    return Error::unavailable(std::string("commit: ") + rd_kafka_err2str(err));
  return {};
}

int Consumer::assignedPartitions() const {
  rd_kafka_topic_partition_list_t* list = nullptr;
  if (rd_kafka_assignment(rk_.get(), &list) != RD_KAFKA_RESP_ERR_NO_ERROR || !list) return 0;
  PartitionListPtr owned(list);
  return owned->cnt;
}

Status Consumer::setPaused(bool paused) {
  rd_kafka_topic_partition_list_t* list = nullptr;
  if (auto err = rd_kafka_assignment(rk_.get(), &list); err != RD_KAFKA_RESP_ERR_NO_ERROR || !list)
    return Error::unavailable(std::string("reading the assignment: ") + rd_kafka_err2str(err));
  PartitionListPtr owned(list);
  const auto err =
      paused ? rd_kafka_pause_partitions(rk_.get(), owned.get()) : rd_kafka_resume_partitions(rk_.get(), owned.get());
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
    return Error::unavailable(std::string(paused ? "pause: " : "resume: ") + rd_kafka_err2str(err));
  return {};
}

Status createTopics(const KafkaConfig& kafka, const std::vector<std::string>& topics, int partitions,
                    std::chrono::milliseconds timeout) {
  HandlePtr rk = makeHandle(RD_KAFKA_PRODUCER, makeConf(clientProperties(kafka, "admin")));
  // The admin API's own handles, each owned here.
  struct NewTopicDeleter {
    void operator()(rd_kafka_NewTopic_t* t) const { rd_kafka_NewTopic_destroy(t); }
  };
  struct OptionsDeleter {
    void operator()(rd_kafka_AdminOptions_t* o) const { rd_kafka_AdminOptions_destroy(o); }
  };
  struct EventDeleter {
    void operator()(rd_kafka_event_t* e) const { rd_kafka_event_destroy(e); }
  };
  std::vector<std::unique_ptr<rd_kafka_NewTopic_t, NewTopicDeleter>> owned;
  std::vector<rd_kafka_NewTopic_t*> new_topics;
  char err[512];
  for (const auto& t : topics) {
    owned.emplace_back(rd_kafka_NewTopic_new(t.c_str(), partitions, 1, err, sizeof err));
    if (!owned.back()) return Error::invalidArgument("topic " + t + ": " + err);
    new_topics.push_back(owned.back().get());
  }
  QueuePtr queue(rd_kafka_queue_new(rk.get()));
  std::unique_ptr<rd_kafka_AdminOptions_t, OptionsDeleter> options(
      rd_kafka_AdminOptions_new(rk.get(), RD_KAFKA_ADMIN_OP_CREATETOPICS));
  rd_kafka_AdminOptions_set_operation_timeout(options.get(), static_cast<int>(timeout.count()), err, sizeof err);
  rd_kafka_CreateTopics(rk.get(), new_topics.data(), new_topics.size(), options.get(), queue.get());
  std::unique_ptr<rd_kafka_event_t, EventDeleter> event(
      rd_kafka_queue_poll(queue.get(), static_cast<int>(timeout.count()) + 1000));
  Status status;
  if (!event) {
    status = Error::timeout("create topics: no answer from the broker");
  } else if (rd_kafka_event_error(event.get())) {
    status = Error::unavailable(std::string("create topics: ") + rd_kafka_event_error_string(event.get()));
  } else {
    size_t count = 0;
    const rd_kafka_topic_result_t** results =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event.get()), &count);
    for (size_t i = 0; i < count; ++i) {
      const rd_kafka_resp_err_t e = rd_kafka_topic_result_error(results[i]);
      if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        status = Error::unavailable(std::string("create topic ") + rd_kafka_topic_result_name(results[i]) + ": " +
                                    rd_kafka_err2str(e));
        break;
      }
    }
  }
  return status;
}

std::int32_t partitionForKey(const std::string& key, std::int32_t partition_count) {
  TF_CHECK(partition_count > 0 && !key.empty(), "partitionForKey needs a key and a partition");
  // The topic handle is not read by the partitioner; the function is librdkafka's own, so a record
  // placed here lands where the default partitioner would have put it.
  return rd_kafka_msg_partitioner_consistent_random(nullptr, key.data(), key.size(), partition_count, nullptr, nullptr);
}

RecordFinder::RecordFinder(const KafkaConfig& kafka, const std::string& role) {
  // A group id is required by the consumer API; assign() never joins the group, and nothing is
  // committed under it.
  rk_ = makeHandle(RD_KAFKA_CONSUMER, makeConf(clientProperties(kafka, role,
                                                                {{"group.id", kafka.client_id + "-record-finder"},
                                                                 {"enable.auto.commit", "false"},
                                                                 {"enable.auto.offset.store", "false"},
                                                                 {"enable.partition.eof", "true"}})));
  rd_kafka_poll_set_consumer(rk_.get());
}

RecordFinder::~RecordFinder() {
  if (rk_) rd_kafka_consumer_close(rk_.get());
}

Result<std::int32_t> RecordFinder::partitionCount(const std::string& topic, std::chrono::milliseconds timeout) {
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk_.get(), topic.c_str(), nullptr);
  if (!rkt) return Error::invalidArgument("topic " + topic + ": " + rd_kafka_err2str(rd_kafka_last_error()));
  const struct rd_kafka_metadata* md = nullptr;
  const rd_kafka_resp_err_t err = rd_kafka_metadata(rk_.get(), 0, rkt, &md, static_cast<int>(timeout.count()));
  rd_kafka_topic_destroy(rkt);
  if (err) return Error::unavailable("metadata of " + topic + ": " + rd_kafka_err2str(err)).asOutage("kafka");
  std::int32_t count = 0;
  rd_kafka_resp_err_t topic_err = RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
  if (md->topic_cnt == 1) {
    count = md->topics[0].partition_cnt;
    topic_err = md->topics[0].err;
  }
  rd_kafka_metadata_destroy(md);
  if (topic_err || count <= 0)
    return Error::unavailable("metadata of " + topic + ": " + rd_kafka_err2str(topic_err)).asOutage("kafka");
  return count;
}

Result<std::pair<std::int64_t, std::int64_t>> RecordFinder::watermarks(const std::string& topic, std::int32_t partition,
                                                                       std::chrono::milliseconds timeout) {
  std::int64_t low = 0, high = 0;
  const rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(rk_.get(), topic.c_str(), partition, &low, &high,
                                                                   static_cast<int>(timeout.count()));
  if (err)
    return Error::unavailable("end of " + topic + "[" + std::to_string(partition) + "]: " + rd_kafka_err2str(err))
        .asOutage("kafka");
  return std::make_pair(low, high);
}

Result<std::int64_t> RecordFinder::endOffset(const std::string& topic, std::int32_t partition,
                                             std::chrono::milliseconds timeout) {
  auto marks = watermarks(topic, partition, timeout);
  if (!marks) return marks.error();
  return marks->second;
}

Result<bool> RecordFinder::contains(const std::string& topic, std::int32_t partition, std::int64_t from,
                                    const Header& header, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const std::string where = topic + "[" + std::to_string(partition) + "]";
  auto marks = watermarks(topic, partition, timeout);
  if (!marks) return marks.error();
  const auto [low, high] = *marks;
  from = std::max(from, low);
  if (from >= high) return false;
  PartitionListPtr list(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), partition)->offset = from;
  if (auto err = rd_kafka_assign(rk_.get(), list.get()))
    return Error::unavailable("reading " + where + ": " + rd_kafka_err2str(err)).asOutage("kafka");
  Result<bool> found =
      Error::timeout("reading " + where + ": not through to offset " + std::to_string(high) + " in time")
          .asOutage("kafka");
  while (std::chrono::steady_clock::now() < deadline) {
    MessagePtr msg(rd_kafka_consumer_poll(rk_.get(), 100));
    if (!msg) continue;
    // Only what concerns this partition counts: a client-wide event queued since an earlier
    // look-up (a broker connection dropped) is librdkafka's to recover from. (Records and
    // end-of-partition events of an earlier assignment are dropped by librdkafka itself.)
    const bool ours = msg->rkt && topic == rd_kafka_topic_name(msg->rkt) && msg->partition == partition;
    if (!ours) continue;
    if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      if (msg->offset < high) continue;  // not yet through to the end this look-up must read to
      found = false;
      break;
    }
    if (msg->err) {
      found = Error::unavailable("reading " + where + ": " + rd_kafka_message_errstr(msg.get())).asOutage("kafka");
      break;
    }
    const Message m = copyMessage(msg.get());
    if (m.header(header.name) == header.value) {
      found = true;
      break;
    }
    if (m.offset + 1 >= high) {
      found = false;
      break;
    }
  }
  (void)rd_kafka_assign(rk_.get(), nullptr);
  return found;
}

std::vector<std::string> configuredTopics(const Config& config) {
  std::vector<std::string> topics = {config.kafka.topics.inbound};
  for (const auto& tier : config.tiers) topics.push_back(config.kafka.tierTopic(tier.name));
  topics.push_back(config.kafka.topics.results);
  topics.push_back(config.kafka.topics.updates);
  topics.push_back(config.kafka.topics.dlq);
  topics.push_back(config.kafka.topics.deferred);
  topics.push_back(config.kafka.topics.shadow);
  topics.push_back(config.kafka.topics.feedback);
  return topics;
}

MockBroker::MockBroker(int brokers) {
  // The handle only does the cluster's bookkeeping; it never connects anywhere.
  ConfPtr conf = makeConf({{"client.id", "ticketflow-mock-broker"}, {"log_level", "3"}});
  rk_ = makeHandle(RD_KAFKA_PRODUCER, std::move(conf));
  cluster_ = rd_kafka_mock_cluster_new(rk_.get(), brokers);
  if (!cluster_) throw std::runtime_error("cannot start the embedded Kafka broker");
  bootstrap_ = rd_kafka_mock_cluster_bootstraps(cluster_);
}

MockBroker::~MockBroker() {
  if (cluster_) rd_kafka_mock_cluster_destroy(cluster_);
}

Status MockBroker::createTopic(const std::string& topic, int partitions) {
  const rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(cluster_, topic.c_str(), partitions, 1);
  if (err) return Error::unavailable("create topic " + topic + ": " + rd_kafka_err2str(err));
  return {};
}

}  // namespace ticketflow::kafka
