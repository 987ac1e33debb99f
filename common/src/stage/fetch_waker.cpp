#include "fetch_waker.hpp"

#include "ticketflow/core/thread_name.hpp"

namespace ticketflow::stage {

FetchWaker::FetchWaker(const kafka::GroupConsumer& consumer, const std::string& thread_name) : consumer_(consumer) {
  thread_ = std::thread([this, thread_name] {
    nameThisThread(thread_name);
    loop();
  });
}

FetchWaker::~FetchWaker() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  ready_.notify_one();
  thread_.join();
}

void FetchWaker::wake(kafka::TopicPartition partition) {
  {
    std::lock_guard lock(mutex_);
    wake_ = std::move(partition);
  }
  ready_.notify_one();
}

bool FetchWaker::prefetchDrained(bool can_wake) {
  const std::int64_t run = std::exchange(messages_since_empty_poll_, 0);
  if (run < kDrainedRun || !can_wake) return false;
  const auto now = std::chrono::steady_clock::now();
  if (now < next_drained_wake_at_) return false;
  next_drained_wake_at_ = now + std::chrono::milliseconds(20);
  return true;
}

void FetchWaker::wakeNext(const std::vector<kafka::TopicPartition>& fetching) {
  if (!fetching.empty()) wake(fetching[drained_wakes_++ % fetching.size()]);
}

kafka::Watermarks FetchWaker::watermarks(const kafka::TopicPartition& partition) {
  if (auto fetched = consumer_.fetchedWatermarks(partition)) return *fetched;
  unknown_.insert(partition);
  std::lock_guard lock(mutex_);
  auto it = queried_.find(partition);
  return it == queried_.end() ? kafka::Watermarks{} : it->second;
}

void FetchWaker::queryWanted() {
  const auto now = std::chrono::steady_clock::now();
  if (unknown_.empty() || now < next_watermark_query_at_) return;
  next_watermark_query_at_ = now + std::chrono::seconds(1);
  {
    std::lock_guard lock(mutex_);
    wanted_ = std::exchange(unknown_, {});
  }
  ready_.notify_one();
}

void FetchWaker::loop() {
  std::unique_lock lock(mutex_);
  while (true) {
    ready_.wait(lock, [this] { return stop_ || wake_.has_value() || !wanted_.empty(); });
    if (stop_) return;
    std::optional<kafka::TopicPartition> wake;
    wake.swap(wake_);
    std::set<kafka::TopicPartition> wanted;
    wanted.swap(wanted_);
    lock.unlock();
    if (wake) (void)consumer_.queryWatermarks(*wake, std::chrono::seconds(1));
    std::map<kafka::TopicPartition, kafka::Watermarks> found;
    for (const auto& tp : wanted)
      if (auto w = consumer_.queryWatermarks(tp, std::chrono::seconds(1))) found[tp] = *w;
    lock.lock();
    for (const auto& [tp, w] : found) queried_[tp] = w;
  }
}

}  // namespace ticketflow::stage
