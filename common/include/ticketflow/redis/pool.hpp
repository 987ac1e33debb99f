#pragma once
// RedisPool: a fixed-size pool of RedisClient connections shared by the threads of one process,
// and RedisScript: a Lua script run by EVALSHA with a NOSCRIPT fallback to EVAL.
//
// Ownership: the pool owns its connections; a Lease borrows one and gives it back on
// destruction (a broken connection is discarded instead, and a new one is made on demand).
// Threading: every member is thread-safe. Errors: Redis down, slow or refusing is a retriable
// kUnavailable / kTimeout Error; after a failed connect the pool waits (exponential backoff,
// capped) before trying again, failing fast meanwhile so callers never pile up on a dead server.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ticketflow/config/config.hpp"
#include "ticketflow/core/clock.hpp"
#include "ticketflow/core/result.hpp"
#include "ticketflow/redis/client.hpp"

namespace ticketflow::redis {

struct RedisPoolOptions {
  RedisEndpoint endpoint;
  int pool_size = 8;
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds command_timeout{500};
  // How long acquire() waits for a connection when all are lent out.
  std::chrono::milliseconds acquire_timeout{2000};
  std::chrono::milliseconds backoff_initial{50};
  std::chrono::milliseconds backoff_max{2000};

  // From the redis section of the configuration (url, password, pool_size, timeouts).
  static Result<RedisPoolOptions> fromConfig(const RedisConfig& config);
};

// A Lua script and its SHA1, computed once.
class RedisScript {
 public:
  explicit RedisScript(std::string source);
  const std::string& source() const { return source_; }
  const std::string& sha1() const { return sha1_; }

 private:
  std::string source_;
  std::string sha1_;
};

// One command of a pipeline: plain, or a script run by EVALSHA (EVAL when the server does not
// know it yet). Components build these so that a caller can send several components' work in
// one round trip (RedisPool::run).
struct RedisCall {
  std::vector<std::string> argv;  // plain: the command; script: EVALSHA sha numkeys keys... args...
  const RedisScript* script = nullptr;

  static RedisCall command(std::vector<std::string> argv) { return {std::move(argv), nullptr}; }
  static RedisCall eval(const RedisScript& script, const std::vector<std::string>& keys,
                        const std::vector<std::string>& args);
};

class RedisPool {
 public:
  class Lease {
   public:
    Lease(Lease&& other) noexcept : pool_(other.pool_), client_(std::move(other.client_)) { other.pool_ = nullptr; }
    Lease& operator=(Lease&&) = delete;
    Lease(const Lease&) = delete;
    ~Lease();
    RedisClient& operator*() const { return *client_; }
    RedisClient* operator->() const { return client_.get(); }

   private:
    friend class RedisPool;
    Lease(RedisPool* pool, std::unique_ptr<RedisClient> client) : pool_(pool), client_(std::move(client)) {}
    RedisPool* pool_;
    std::unique_ptr<RedisClient> client_;
  };

  struct Stats {
    std::uint64_t connects = 0;  // successful connects
    std::uint64_t connect_failures = 0;
    std::uint64_t discarded = 0;      // broken connections dropped
    std::uint64_t fast_failures = 0;  // requests refused during a backoff window
  };

  explicit RedisPool(RedisPoolOptions options, const Clock& clock = SystemClock::instance());
  RedisPool(const RedisPool&) = delete;
  RedisPool& operator=(const RedisPool&) = delete;

  // Borrows a connection, connecting if none is idle and the pool is not full.
  Result<Lease> acquire();

  // Convenience: one command / one pipeline on a borrowed connection.
  Result<Reply> command(const std::vector<std::string>& argv);
  Result<std::vector<Reply>> pipeline(const std::vector<std::vector<std::string>>& commands);
  // EVALSHA, falling back to EVAL when the server does not know the script (first use, restart,
  // SCRIPT FLUSH). A Lua error comes back as a Reply of type kError.
  Result<Reply> eval(const RedisScript& script, const std::vector<std::string>& keys,
                     const std::vector<std::string>& args);
  // Several calls in one round trip, replies in order; a script the server did not know is
  // sent again by EVAL (a second round trip, once per script and server start).
  Result<std::vector<Reply>> run(const std::vector<RedisCall>& calls);

  Stats stats() const;
  const RedisPoolOptions& options() const { return options_; }

 private:
  void giveBack(std::unique_ptr<RedisClient> client);

  const RedisPoolOptions options_;
  const Clock& clock_;
  mutable std::mutex mutex_;
  std::condition_variable available_;
  std::vector<std::unique_ptr<RedisClient>> idle_;
  int open_ = 0;  // idle + lent + being connected
  std::chrono::steady_clock::time_point next_connect_at_{};
  std::chrono::milliseconds backoff_{0};
  Stats stats_;
};

// Runs a script on a client directly (EVALSHA, NOSCRIPT -> EVAL).
Result<Reply> evalScript(RedisClient& client, const RedisScript& script, const std::vector<std::string>& keys,
                         const std::vector<std::string>& args);

}  // namespace ticketflow::redis
