#include "ticketflow/redis/batcher.hpp"

#include <algorithm>
#include <iterator>
#include <optional>

#include "ticketflow/core/thread_name.hpp"

namespace ticketflow::redis {

CommandBatcher::CommandBatcher(std::shared_ptr<RedisPool> pool, std::size_t max_calls_per_trip)
    : pool_(std::move(pool)), max_calls_per_trip_(std::max<std::size_t>(1, max_calls_per_trip)), thread_([this] {
        nameThisThread("tf-redis-batch");
        loop();
      }) {}

CommandBatcher::~CommandBatcher() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  queued_.notify_one();
  thread_.join();
}

void CommandBatcher::submit(std::vector<RedisCall> calls, Callback done) {
  {
    std::lock_guard lock(mutex_);
    ++stats_.submitted;
    queue_.push_back({std::move(calls), std::move(done)});
  }
  queued_.notify_one();
}

Result<std::vector<Reply>> CommandBatcher::run(std::vector<RedisCall> calls) {
  std::mutex mutex;
  std::condition_variable answered;
  std::optional<Result<std::vector<Reply>>> out;
  submit(std::move(calls), [&](Result<std::vector<Reply>> replies) {
    std::lock_guard lock(mutex);
    out.emplace(std::move(replies));
    answered.notify_one();
  });
  std::unique_lock lock(mutex);
  answered.wait(lock, [&] { return out.has_value(); });
  return std::move(*out);
}

CommandBatcher::Stats CommandBatcher::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void CommandBatcher::loop() {
  std::vector<Request> trip;
  std::vector<RedisCall> calls;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      queued_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything queued was answered
      // Whole requests only, so a request's replies never straddle two round trips.
      std::size_t taken = 0;
      while (!queue_.empty() && (trip.empty() || taken + queue_.front().calls.size() <= max_calls_per_trip_)) {
        taken += queue_.front().calls.size();
        trip.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      ++stats_.round_trips;
    }
    for (auto& request : trip)
      for (auto& call : request.calls) calls.push_back(std::move(call));
    auto replies = calls.empty() ? Result<std::vector<Reply>>(std::vector<Reply>()) : pool_->run(calls);
    std::size_t next = 0;
    for (auto& request : trip) {
      const std::size_t n = request.calls.size();
      if (request.done) {
        if (!replies) {
          request.done(replies.error());
        } else if (replies->size() < next + n) {
          request.done(Error::internal("Redis answered fewer replies than commands sent"));
        } else {
          request.done(std::vector<Reply>(std::make_move_iterator(replies->begin() + static_cast<long>(next)),
                                          std::make_move_iterator(replies->begin() + static_cast<long>(next + n))));
        }
      }
      next += n;
    }
    trip.clear();
    calls.clear();
  }
}

}  // namespace ticketflow::redis
