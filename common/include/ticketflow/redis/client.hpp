#pragma once
// A Redis connection over hiredis, owned RAII. One connection is used by one thread at a time;
// RedisPool (issue: Redis components) shares several across threads. hiredis lives only in
// common/src/redis.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ticketflow/core/result.hpp"

typedef struct redisContext redisContext;

namespace ticketflow::redis {

struct RedisEndpoint {
  std::string host = "127.0.0.1";
  int port = 6379;
  int db = 0;
  std::string username;
  std::string password;
  bool tls = false;
};

// Parses redis://[user:password@]host:port/db (and rediss:// for TLS).
Result<RedisEndpoint> parseRedisUrl(const std::string& url);

struct Reply {
  enum class Type { kNil, kString, kStatus, kInteger, kArray, kError };
  Type type = Type::kNil;
  std::string str;  // kString, kStatus, kError
  std::int64_t integer = 0;
  std::vector<Reply> elements;

  bool isNil() const { return type == Type::kNil; }
};

struct ContextDeleter {
  void operator()(redisContext* ctx) const;
};

class RedisClient {
 public:
  // Connects (and AUTH/SELECT as the endpoint says). Errors are retriable kUnavailable.
  static Result<std::unique_ptr<RedisClient>> connect(const RedisEndpoint& endpoint,
                                                      std::chrono::milliseconds connect_timeout,
                                                      std::chrono::milliseconds command_timeout);

  // Runs one command; a Redis error reply is returned as a Reply of type kError, a broken
  // connection as an Error (and the client must be discarded).
  Result<Reply> command(const std::vector<std::string>& argv);
  // Sends all commands, then reads all replies (one round trip).
  Result<std::vector<Reply>> pipeline(const std::vector<std::vector<std::string>>& commands);
  // The same, for commands held elsewhere (the batcher's RedisCalls): nothing is copied.
  Result<std::vector<Reply>> pipeline(std::span<const std::vector<std::string>* const> commands);

  bool broken() const { return broken_; }

 private:
  explicit RedisClient(redisContext* ctx) : ctx_(ctx) {}
  std::unique_ptr<redisContext, ContextDeleter> ctx_;
  bool broken_ = false;
};

// The value of `field` in the text of an INFO reply (field "used_memory_human" -> "1.53G");
// nullopt when the reply has no such line.
std::optional<std::string> infoField(std::string_view info, std::string_view field);

}  // namespace ticketflow::redis
