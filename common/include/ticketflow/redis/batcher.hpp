#pragma once
// CommandBatcher: many callers' Redis commands in one pipeline per round trip. A caller hands
// over its calls and a callback and goes on; a lane's thread sends everything queued in that
// lane as one pipeline (RedisPool::run), then calls each callback with exactly its own replies,
// or with the round trip's error. Under load a round trip carries many callers' commands, so no
// thread blocks on a round trip per command (the tier's admission, the result writer's
// idempotency checks and markers); when idle a call goes out at once.
//
// Lanes: each has its own queue, thread and connection, and sends one round trip at a time, in
// submission order, so within a lane a command submitted after another is executed after it and
// callbacks run in submission order. submitOrdered() puts every call of one key in the same
// lane (order where it matters); submit() and run() spread calls over the lanes, so one lane's
// thread waiting for a core does not hold up every caller. Callbacks run on a lane's thread:
// they must be short and must not wait for the batcher. Destruction sends what is queued and
// answers every callback before returning. Thread-safe.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string_view>
#include <thread>
#include <vector>

#include "ticketflow/core/result.hpp"
#include "ticketflow/redis/pool.hpp"

namespace ticketflow::redis {

class CommandBatcher {
 public:
  using Callback = std::function<void(Result<std::vector<Reply>>)>;

  // At most `max_calls_per_trip` calls go in one pipeline (a bigger backlog takes several).
  explicit CommandBatcher(std::shared_ptr<RedisPool> pool, int lanes = 1, std::size_t max_calls_per_trip = 1024);
  ~CommandBatcher();
  CommandBatcher(const CommandBatcher&) = delete;
  CommandBatcher& operator=(const CommandBatcher&) = delete;

  // `done` may be empty (fire and forget: the replies are dropped).
  void submit(std::vector<RedisCall> calls, Callback done);
  // Calls with equal `key` go out, and are answered, in the order they were submitted.
  void submitOrdered(std::string_view key, std::vector<RedisCall> calls, Callback done);
  // Submits and waits for the replies: for a thread that needs them before it can go on, whose
  // round trip is then shared with the other waiting threads'. Never from a callback.
  Result<std::vector<Reply>> run(std::vector<RedisCall> calls);

  struct Stats {
    std::uint64_t submitted = 0;
    std::uint64_t round_trips = 0;
  };
  Stats stats() const;  // all lanes together

 private:
  struct Request {
    std::vector<RedisCall> calls;
    Callback done;
  };
  struct Lane {
    std::mutex mutex;
    std::condition_variable queued;
    std::deque<Request> queue;
    bool stopping = false;
    Stats stats;
    std::thread thread;
  };
  void enqueue(Lane& lane, Request request);
  void loop(Lane& lane);

  std::shared_ptr<RedisPool> pool_;
  const std::size_t max_calls_per_trip_;
  std::vector<std::unique_ptr<Lane>> lanes_;
  std::atomic<std::size_t> next_lane_{0};
};

}  // namespace ticketflow::redis
