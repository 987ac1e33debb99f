#include "ticketflow/kafka/raw_relay.hpp"

#include <atomic>

#include <librdkafka/rdkafka.h>

namespace ticketflow::kafka {

namespace {

struct RelayCounters {
  std::atomic<std::int64_t> acked{0};
  std::atomic<std::int64_t> failed{0};
};

void countDelivery(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque) {
  auto* c = static_cast<RelayCounters*>(opaque);
  if (msg->err) {
    c->failed.fetch_add(1);
  } else {
    c->acked.fetch_add(1);
  }
}

Result<HandlePtr> makeProducer(const KafkaConfig& kafka, const std::string& role, RelayCounters* counters) {
  ConfPtr conf =
      makeConf(clientProperties(kafka, role, {{"enable.idempotence", "true"}, {"acks", "all"}, {"linger.ms", "5"}}));
  rd_kafka_conf_set_dr_msg_cb(conf.get(), countDelivery);
  rd_kafka_conf_set_opaque(conf.get(), counters);
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf.get(), err, sizeof err);
  if (!rk) return Error::unavailable(std::string("cannot create producer: ") + err);
  (void)conf.release();
  return HandlePtr(rk);
}

// Produces without blocking on acknowledgements; waits only while the local queue is full.
rd_kafka_resp_err_t produceCopy(rd_kafka_t* rk, const std::string& topic, const void* key, std::size_t key_len,
                                const void* value, std::size_t len) {
  while (true) {
    const rd_kafka_resp_err_t err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_KEY(key, key_len),
                                                      RD_KAFKA_V_VALUE(const_cast<void*>(value), len),
                                                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) return err;
    rd_kafka_poll(rk, 5);
  }
}

}  // namespace

Status produceFiller(const KafkaConfig& kafka, const std::string& topic, std::int64_t count, std::size_t bytes) {
  RelayCounters counters;
  auto producer = makeProducer(kafka, "bench-filler", &counters);
  if (!producer) return producer.error();
  rd_kafka_t* rk = producer->get();
  std::string value(bytes, 'x');
  for (std::int64_t n = 0; n < count; ++n) {
    const std::string key = "ticket-" + std::to_string(n);
    value.replace(0, std::min(bytes, key.size()), key.substr(0, std::min(bytes, key.size())));
    const rd_kafka_resp_err_t err = produceCopy(rk, topic, key.data(), key.size(), value.data(), value.size());
    if (err) return Error::unavailable("produce to " + topic + ": " + rd_kafka_err2str(err));
    rd_kafka_poll(rk, 0);
  }
  if (rd_kafka_flush(rk, 120000)) return Error::timeout("filler data not acknowledged within 120 s");
  if (counters.failed.load())
    return Error::unavailable(std::to_string(counters.failed.load()) + " filler messages failed");
  return {};
}

Result<RelayResult> runRawRelay(const KafkaConfig& kafka, const std::string& input, const std::string& output,
                                const std::string& group, std::int64_t count, std::chrono::seconds timeout,
                                const Properties& consumer_properties) {
  RelayCounters counters;
  auto producer = makeProducer(kafka, "bench-relay", &counters);
  if (!producer) return producer.error();
  rd_kafka_t* prk = producer->get();

  Properties cp = clientProperties(kafka, "bench-relay",
                                   {{"group.id", group},
                                    {"enable.auto.offset.store", "false"},
                                    {"enable.auto.commit", "false"},
                                    {"auto.offset.reset", "earliest"},
                                    {"partition.assignment.strategy", "cooperative-sticky"},
                                    {"queued.max.messages.kbytes", "16384"}});
  for (const auto& [k, v] : consumer_properties) cp[k] = v;
  ConfPtr conf = makeConf(cp);
  char err[512];
  HandlePtr consumer(rd_kafka_new(RD_KAFKA_CONSUMER, conf.get(), err, sizeof err));
  if (!consumer) return Error::unavailable(std::string("cannot create consumer: ") + err);
  (void)conf.release();
  rd_kafka_t* crk = consumer.get();
  rd_kafka_poll_set_consumer(crk);
  PartitionListPtr topics(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(topics.get(), input.c_str(), RD_KAFKA_PARTITION_UA);
  if (const rd_kafka_resp_err_t e = rd_kafka_subscribe(crk, topics.get()))
    return Error::unavailable(std::string("subscribe: ") + rd_kafka_err2str(e));

  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::chrono::steady_clock::time_point first{};
  auto next_commit = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  std::int64_t relayed = 0;
  while (counters.acked.load() < count && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_poll(prk, 0);
    if (std::chrono::steady_clock::now() >= next_commit) {
      next_commit += std::chrono::seconds(1);
      rd_kafka_commit(crk, nullptr, /*async=*/1);
    }
    if (relayed >= count) {
      rd_kafka_poll(prk, 10);
      continue;
    }
    MessagePtr msg(rd_kafka_consumer_poll(crk, 10));
    if (!msg || msg->err) continue;
    if (relayed == 0) first = std::chrono::steady_clock::now();
    const rd_kafka_resp_err_t e = produceCopy(prk, output, msg->key, msg->key_len, msg->payload, msg->len);
    if (e) return Error::unavailable(std::string("relay produce: ") + rd_kafka_err2str(e));
    PartitionListPtr stored(rd_kafka_topic_partition_list_new(1));
    rd_kafka_topic_partition_list_add(stored.get(), rd_kafka_topic_name(msg->rkt), msg->partition)->offset =
        msg->offset + 1;
    rd_kafka_offsets_store(crk, stored.get());
    ++relayed;
  }
  RelayResult result;
  result.messages = counters.acked.load();
  result.elapsed = std::chrono::steady_clock::now() - first;
  rd_kafka_commit(crk, nullptr, /*async=*/0);
  rd_kafka_consumer_close(crk);
  if (result.messages < count)
    return Error::timeout("raw relay: only " + std::to_string(result.messages) + " of " + std::to_string(count) +
                          " relayed in time");
  return result;
}

}  // namespace ticketflow::kafka
