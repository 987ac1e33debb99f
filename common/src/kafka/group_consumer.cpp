#include "ticketflow/kafka/group_consumer.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include <librdkafka/rdkafka.h>

#include "handles.hpp"
#include "ticketflow/core/thread_name.hpp"

namespace ticketflow::kafka {

namespace {

std::string errText(rd_kafka_resp_err_t err) {
  return rd_kafka_err2str(err);
}

std::vector<TopicPartition> partitionsOf(const rd_kafka_topic_partition_list_t* list) {
  std::vector<TopicPartition> out;
  for (int i = 0; i < list->cnt; ++i) out.emplace_back(list->elems[i].topic, list->elems[i].partition);
  return out;
}

PartitionListPtr listOf(const std::vector<TopicPartition>& partitions) {
  PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size())));
  for (const auto& [topic, partition] : partitions)
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), partition);
  return list;
}

// The partitions of `list` librdkafka reported no per-partition error for.
std::vector<TopicPartition> succeeded(const rd_kafka_topic_partition_list_t* list) {
  std::vector<TopicPartition> out;
  for (int i = 0; i < list->cnt; ++i)
    if (!list->elems[i].err) out.emplace_back(list->elems[i].topic, list->elems[i].partition);
  return out;
}

std::string metadataOf(const rd_kafka_topic_partition_t& p) {
  return p.metadata ? std::string(static_cast<const char*>(p.metadata), p.metadata_size) : std::string();
}

}  // namespace

// librdkafka's C callbacks. No exception may unwind through its C frames: each catches at its edge.
struct GroupConsumerCallbacks {
  static void rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts, void* opaque) {
    auto* self = static_cast<GroupConsumer*>(opaque);
    try {
      if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        self->assigned(parts);
      } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        self->revoking(parts);
      } else {
        self->log_("rebalance error: " + errText(err));
        ErrorPtr(rd_kafka_incremental_unassign(rk, parts));
      }
    } catch (const std::exception& e) {
      // The partitions' work is redone by whoever owns them next: nothing is committed here.
      self->log_(std::string("rebalance handling threw: ") + e.what());
    }
  }

  // Commit results arrive on the poll thread.
  static void committed(rd_kafka_t*, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* offsets, void* opaque) {
    auto* self = static_cast<GroupConsumer*>(opaque);
    try {
      if (err == RD_KAFKA_RESP_ERR__NO_OFFSET || !offsets) return;  // nothing was committed
      std::vector<CommitOutcome> outcomes;
      std::string first_error = err ? errText(err) : "";
      for (int i = 0; i < offsets->cnt; ++i) {
        const auto& o = offsets->elems[i];
        outcomes.push_back({{o.topic, o.partition}, o.offset, metadataOf(o), !err && !o.err});
        if (first_error.empty() && o.err) first_error = errText(o.err);
      }
      self->listener_.onCommitted(outcomes, first_error);
    } catch (const std::exception& e) {  // the next commit sends the offsets again
      self->log_(std::string("commit result lost: ") + e.what());
    }
  }

  static void delivered(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque) {
    try {
      std::optional<Error> error;
      if (msg->err) error = produceError(rd_kafka_topic_name(msg->rkt), msg->err);
      static_cast<AsyncProducer*>(opaque)->delivered_(reinterpret_cast<std::uintptr_t>(msg->_private),
                                                      std::move(error));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "kafka: delivery report lost: %s\n", e.what());
    }
  }
};

GroupConsumer::GroupConsumer(const Properties& properties, RebalanceListener& listener,
                             std::function<void(const std::string&)> log)
    : listener_(listener), log_(std::move(log)) {
  ConfPtr conf = makeConf(properties);
  rd_kafka_conf_set_opaque(conf.get(), this);
  rd_kafka_conf_set_rebalance_cb(conf.get(), &GroupConsumerCallbacks::rebalance);
  rd_kafka_conf_set_offset_commit_cb(conf.get(), &GroupConsumerCallbacks::committed);
  consumer_ = makeHandle(RD_KAFKA_CONSUMER, std::move(conf));
  rd_kafka_poll_set_consumer(consumer_.get());
  queue_.reset(rd_kafka_queue_get_consumer(consumer_.get()));
}

GroupConsumer::~GroupConsumer() {
  close();
}

void GroupConsumer::close() {
  if (closed_) return;
  closed_ = true;
  releaseQueue();
  rd_kafka_consumer_close(consumer_.get());
}

void GroupConsumer::releaseQueue() {
  std::lock_guard lock(queue_mutex_);
  queue_.reset();
}

void GroupConsumer::wake() {
  std::lock_guard lock(queue_mutex_);
  if (queue_) rd_kafka_queue_yield(queue_.get());
}

Status GroupConsumer::subscribe(const std::vector<std::string>& topics) {
  PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(topics.size())));
  for (const auto& t : topics) rd_kafka_topic_partition_list_add(list.get(), t.c_str(), RD_KAFKA_PARTITION_UA);
  const rd_kafka_resp_err_t err = rd_kafka_subscribe(consumer_.get(), list.get());
  if (err) return Error::unavailable("subscribe: " + errText(err));
  return {};
}

Polled GroupConsumer::poll(std::chrono::milliseconds timeout) {
  Polled out;
  MessagePtr msg(rd_kafka_consumer_poll(consumer_.get(), static_cast<int>(timeout.count())));
  if (!msg) return out;
  if (!msg->err) {
    out.kind = Polled::Kind::kMessage;
    out.message = copyMessage(msg.get());
  } else if (msg->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET && msg->rkt) {
    out.kind = Polled::Kind::kOffsetGone;
    out.partition = {rd_kafka_topic_name(msg->rkt), msg->partition};
  } else if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
    out.kind = Polled::Kind::kError;
    out.error = rd_kafka_message_errstr(msg.get());
  }
  return out;
}

void GroupConsumer::assigned(rd_kafka_topic_partition_list_t* parts) {
  // Committed offsets and metadata, so the listener can skip work finished beyond the offset.
  PartitionListPtr committed(rd_kafka_topic_partition_list_copy(parts));
  const rd_kafka_resp_err_t cerr = rd_kafka_committed(consumer_.get(), committed.get(), 10000);
  std::vector<AssignedPartition> out;
  for (int i = 0; i < parts->cnt; ++i) {
    auto& p = parts->elems[i];
    AssignedPartition a;
    a.partition = {p.topic, p.partition};
    if (!cerr) {
      const auto* c = rd_kafka_topic_partition_list_find(committed.get(), p.topic, p.partition);
      if (c && c->err == RD_KAFKA_RESP_ERR_NO_ERROR && c->offset >= 0) {
        a.committed = c->offset;
        a.metadata = metadataOf(*c);
      }
      // Never committed (the coordinator says so, not: we could not ask): start at the log start.
      // (Left unset, auto.offset.reset=error would stop the partition.)
      if (c && c->err == RD_KAFKA_RESP_ERR_NO_ERROR && c->offset < 0) p.offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    out.push_back(std::move(a));
  }
  if (ErrorPtr e{rd_kafka_incremental_assign(consumer_.get(), parts)})
    log_(std::string("incremental assign failed: ") + rd_kafka_error_string(e.get()));
  listener_.onAssigned(out, cerr ? errText(cerr) : "");
}

void GroupConsumer::revoking(rd_kafka_topic_partition_list_t* parts) {
  listener_.onRevoking(partitionsOf(parts), rd_kafka_assignment_lost(consumer_.get()) != 0);
  if (ErrorPtr e{rd_kafka_incremental_unassign(consumer_.get(), parts)})
    log_(std::string("incremental unassign failed: ") + rd_kafka_error_string(e.get()));
}

std::vector<TopicPartition> GroupConsumer::pause(const std::vector<TopicPartition>& partitions) {
  if (partitions.empty()) return {};
  PartitionListPtr list = listOf(partitions);
  rd_kafka_pause_partitions(consumer_.get(), list.get());
  return succeeded(list.get());
}

std::vector<TopicPartition> GroupConsumer::resume(const std::vector<TopicPartition>& partitions) {
  if (partitions.empty()) return {};
  PartitionListPtr list = listOf(partitions);
  rd_kafka_resume_partitions(consumer_.get(), list.get());
  return succeeded(list.get());
}

std::string GroupConsumer::restartAtLogStart(const TopicPartition& partition) {
  PartitionListPtr list(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(list.get(), partition.first.c_str(), partition.second)->offset =
      RD_KAFKA_OFFSET_BEGINNING;
  ErrorPtr e(rd_kafka_incremental_unassign(consumer_.get(), list.get()));
  if (!e) e.reset(rd_kafka_incremental_assign(consumer_.get(), list.get()));
  return e ? rd_kafka_error_string(e.get()) : "";
}

Status GroupConsumer::commit(const std::vector<OffsetToCommit>& offsets, bool sync) {
  if (offsets.empty()) return {};
  PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(offsets.size())));
  for (const auto& o : offsets) {
    rd_kafka_topic_partition_t* e =
        rd_kafka_topic_partition_list_add(list.get(), o.partition.first.c_str(), o.partition.second);
    e->offset = o.offset;
    if (!o.metadata.empty()) {
      // The list owns its elements' metadata and frees it with the list.
      e->metadata = std::malloc(o.metadata.size());
      std::memcpy(e->metadata, o.metadata.data(), o.metadata.size());
      e->metadata_size = o.metadata.size();
    }
  }
  rd_kafka_resp_err_t err = rd_kafka_offsets_store(consumer_.get(), list.get());
  if (err) log_("offset store: " + errText(err));
  err = rd_kafka_commit(consumer_.get(), list.get(), sync ? 0 : 1);
  if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) return Error::unavailable("commit: " + errText(err));
  return {};
}

bool GroupConsumer::assignmentLost() const {
  return rd_kafka_assignment_lost(consumer_.get()) != 0;
}

std::optional<Watermarks> GroupConsumer::fetchedWatermarks(const TopicPartition& partition) const {
  Watermarks w;
  if (rd_kafka_get_watermark_offsets(consumer_.get(), partition.first.c_str(), partition.second, &w.low, &w.high) ==
          RD_KAFKA_RESP_ERR_NO_ERROR &&
      w.high >= 0 && w.low >= 0)
    return w;
  return std::nullopt;
}

std::optional<Watermarks> GroupConsumer::queryWatermarks(const TopicPartition& partition,
                                                         std::chrono::milliseconds timeout) const {
  Watermarks w;
  if (rd_kafka_query_watermark_offsets(consumer_.get(), partition.first.c_str(), partition.second, &w.low, &w.high,
                                       static_cast<int>(timeout.count())) == RD_KAFKA_RESP_ERR_NO_ERROR)
    return w;
  return std::nullopt;
}

Error produceError(const std::string& topic, int rd_kafka_err) {
  const auto err = static_cast<rd_kafka_resp_err_t>(rd_kafka_err);
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

AsyncProducer::AsyncProducer(const Properties& properties, DeliveryReport delivered, const std::string& thread_name)
    : delivered_(std::move(delivered)) {
  ConfPtr conf = makeConf(properties);
  if (auto it = properties.find("message.max.bytes"); it != properties.end())
    max_message_bytes_ = std::stoll(it->second);
  rd_kafka_conf_set_opaque(conf.get(), this);
  rd_kafka_conf_set_dr_msg_cb(conf.get(), &GroupConsumerCallbacks::delivered);
  producer_ = makeHandle(RD_KAFKA_PRODUCER, std::move(conf));
  reports_ = std::thread([this, thread_name] {
    nameThisThread(thread_name);
    while (!stop_.load()) rd_kafka_poll(producer_.get(), 50);
  });
}

AsyncProducer::~AsyncProducer() {
  stop_ = true;
  reports_.join();
  // The flush serves the remaining reports itself, on this thread.
  rd_kafka_flush(producer_.get(), 5000);
}

std::optional<Error> AsyncProducer::produce(const std::string& topic, std::optional<std::int32_t> partition,
                                            const std::string& key, const std::string& value,
                                            const std::vector<Header>& headers, std::uint64_t tag) {
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
  // A full local queue drains as the broker acknowledges; wait briefly rather than fail.
  for (int tries = 0; tries < 1000; ++tries) {
    HeadersPtr hdrs = makeHeaders(headers);
    err = rd_kafka_producev(
        producer_.get(), RD_KAFKA_V_TOPIC(topic.c_str()),
        RD_KAFKA_V_PARTITION(partition.value_or(RD_KAFKA_PARTITION_UA)), RD_KAFKA_V_KEY(key.data(), key.size()),
        RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADERS(hdrs.get()), RD_KAFKA_V_OPAQUE(reinterpret_cast<void*>(static_cast<std::uintptr_t>(tag))),
        RD_KAFKA_V_END);
    if (!err) {
      (void)hdrs.release();  // the queued record owns them now
      return std::nullopt;
    }
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return produceError(topic, err);
}

void AsyncProducer::flush(std::chrono::milliseconds timeout) {
  rd_kafka_flush(producer_.get(), static_cast<int>(timeout.count()));
}

}  // namespace ticketflow::kafka
