#pragma once
// A helper thread that sends watermark queries for the stage's poll thread, which must not wait
// for them: to wake an idle fetcher, and to learn the watermarks of partitions never fetched.
//
// librdkafka 2.0.2 does not wake a broker thread whose partitions were all paused when they are
// resumed, nor one that stopped fetching because its local queue reached
// queued.max.messages.kbytes: it looks again only on its next 1 s tick, which capped a full
// window at one refill per second (bench pipeline ran at 1,500 instead of 2,100 tickets/s in
// about half the runs). Any request to the partition leader wakes that thread at once.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "ticketflow/kafka/group_consumer.hpp"

namespace ticketflow::stage {

class FetchWaker {
 public:
  FetchWaker(const kafka::GroupConsumer& consumer, const std::string& thread_name);
  ~FetchWaker();  // stops the thread (after at most one query in progress)
  FetchWaker(const FetchWaker&) = delete;
  FetchWaker& operator=(const FetchWaker&) = delete;

  // Wakes `partition`'s leader (one query: more would pile up behind fetches and slow them).
  void wake(kafka::TopicPartition partition);

  // Poll-thread bookkeeping for the drained-prefetch case: true when a poll that found the queue
  // empty follows a run of messages (a drained prefetch, not a trickle), at most every 20 ms.
  // Then the caller wakes one fetching partition's leader with wakeNext(). `can_wake` false (all
  // paused, or no partitions) ends the run without using the 20 ms slot, so the first wake after
  // a resume is never held back by it.
  void messagePolled() { ++messages_since_empty_poll_; }
  bool prefetchDrained(bool can_wake);
  // Wakes the next of `fetching` each time: with several brokers, each leader's fetcher in turn.
  void wakeNext(const std::vector<kafka::TopicPartition>& fetching);

  // The watermarks of `partition` from the last fetch, or else the last ones queried; when
  // neither is known, asks for them (at most once a second for all) and returns -1s.
  kafka::Watermarks watermarks(const kafka::TopicPartition& partition);
  // Sends the queries watermarks() asked for since the last call.
  void queryWanted();

 private:
  void loop();

  static constexpr std::int64_t kDrainedRun = 32;  // messages in a row: the prefetch was full

  const kafka::GroupConsumer& consumer_;
  std::int64_t messages_since_empty_poll_ = 0;  // poll thread only, as the two below
  std::size_t drained_wakes_ = 0;
  std::chrono::steady_clock::time_point next_drained_wake_at_{};
  std::set<kafka::TopicPartition> unknown_;
  std::chrono::steady_clock::time_point next_watermark_query_at_{};

  std::mutex mutex_;
  std::condition_variable ready_;
  bool stop_ = false;
  std::optional<kafka::TopicPartition> wake_;
  std::set<kafka::TopicPartition> wanted_;
  std::map<kafka::TopicPartition, kafka::Watermarks> queried_;
  std::thread thread_;
};

}  // namespace ticketflow::stage
