#pragma once
// CommandBatcher: many callers' Redis commands in one pipeline per round trip. A caller hands
// over its calls and a callback and goes on; one thread sends everything queued as one pipeline
// (RedisPool::run), then calls each callback with exactly its own replies, or with the round
// trip's error. Under load a round trip carries many callers' commands, so no thread blocks on a
// round trip per command (the tier's admission, the result writer's idempotency checks and
// markers); when idle a call goes out at once.
//
// Order: calls go out in submission order, one round trip at a time, so a command submitted
// after another is executed after it, and callbacks run in submission order. (Two or four
// sending threads made round trips smaller and cost more CPU in `bench pipeline`, with no gain:
// docs/pipeline.md.) Callbacks run on the batcher's thread: they must be short and must not wait
// for the batcher. Destruction sends what is queued and answers every callback before
// returning. Thread-safe.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "ticketflow/core/result.hpp"
#include "ticketflow/redis/pool.hpp"

namespace ticketflow::redis {

class CommandBatcher {
 public:
  using Callback = std::function<void(Result<std::vector<Reply>>)>;

  // At most `max_calls_per_trip` calls go in one pipeline (a bigger backlog takes several).
  explicit CommandBatcher(std::shared_ptr<RedisPool> pool, std::size_t max_calls_per_trip = 1024);
  ~CommandBatcher();
  CommandBatcher(const CommandBatcher&) = delete;
  CommandBatcher& operator=(const CommandBatcher&) = delete;

  // `done` may be empty (fire and forget: the replies are dropped).
  void submit(std::vector<RedisCall> calls, Callback done);
  // Submits and waits for the replies: for a thread that needs them before it can go on, whose
  // round trip is then shared with the other waiting threads'. Never from a callback.
  Result<std::vector<Reply>> run(std::vector<RedisCall> calls);

  struct Stats {
    std::uint64_t submitted = 0;
    std::uint64_t round_trips = 0;
  };
  Stats stats() const;

 private:
  struct Request {
    std::vector<RedisCall> calls;
    Callback done;
  };
  void loop();

  std::shared_ptr<RedisPool> pool_;
  const std::size_t max_calls_per_trip_;
  mutable std::mutex mutex_;
  std::condition_variable queued_;
  std::deque<Request> queue_;
  bool stopping_ = false;
  Stats stats_;
  std::thread thread_;  // last: started when everything above exists
};

}  // namespace ticketflow::redis
