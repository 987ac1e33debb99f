#include "ticketflow/redis/batcher.hpp"

#include <algorithm>
#include <iterator>
#include <optional>

#include "ticketflow/core/thread_name.hpp"
#include "ticketflow/redis/embedder.hpp"

namespace ticketflow::redis {

CommandBatcher::CommandBatcher(std::shared_ptr<RedisPool> pool, int lanes, std::size_t max_calls_per_trip)
    : pool_(std::move(pool)), max_calls_per_trip_(std::max<std::size_t>(1, max_calls_per_trip)) {
  for (int i = 0; i < std::max(1, lanes); ++i) lanes_.push_back(std::make_unique<Lane>());
  for (auto& lane : lanes_)
    lane->thread = std::thread([this, raw = lane.get()] {
      nameThisThread("tf-redis-batch");
      loop(*raw);
    });
}

CommandBatcher::~CommandBatcher() {
  for (auto& lane : lanes_) {
    {
      std::lock_guard lock(lane->mutex);
      lane->stopping = true;
    }
    lane->queued.notify_one();
  }
  for (auto& lane : lanes_) lane->thread.join();
}

void CommandBatcher::enqueue(Lane& lane, Request request) {
  {
    std::lock_guard lock(lane.mutex);
    ++lane.stats.submitted;
    lane.queue.push_back(std::move(request));
  }
  lane.queued.notify_one();
}

void CommandBatcher::submit(std::vector<RedisCall> calls, Callback done) {
  Lane& lane = *lanes_[next_lane_.fetch_add(1, std::memory_order_relaxed) % lanes_.size()];
  enqueue(lane, {std::move(calls), std::move(done)});
}

void CommandBatcher::submitOrdered(std::string_view key, std::vector<RedisCall> calls, Callback done) {
  enqueue(*lanes_[fnv1a64(key) % lanes_.size()], {std::move(calls), std::move(done)});
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
  Stats total;
  for (const auto& lane : lanes_) {
    std::lock_guard lock(lane->mutex);
    total.submitted += lane->stats.submitted;
    total.round_trips += lane->stats.round_trips;
  }
  return total;
}

void CommandBatcher::loop(Lane& lane) {
  std::vector<Request> trip;
  std::vector<RedisCall> calls;
  for (;;) {
    {
      std::unique_lock lock(lane.mutex);
      lane.queued.wait(lock, [&] { return lane.stopping || !lane.queue.empty(); });
      if (lane.queue.empty()) return;  // stopping, and everything queued was answered
      // Whole requests only, so a request's replies never straddle two round trips.
      std::size_t taken = 0;
      while (!lane.queue.empty() && (trip.empty() || taken + lane.queue.front().calls.size() <= max_calls_per_trip_)) {
        taken += lane.queue.front().calls.size();
        trip.push_back(std::move(lane.queue.front()));
        lane.queue.pop_front();
      }
      ++lane.stats.round_trips;
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
