#pragma once
// A Redis connection, owned RAII: plain TCP or TLS (rediss://), to one server or to the primary
// that Redis Sentinel names (redis+sentinel://). One connection is used by one thread at a time;
// RedisPool shares several across threads. hiredis (its reply parser) and OpenSSL live only in
// common/src/redis.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ticketflow/core/result.hpp"

typedef struct redisReader redisReader;
typedef struct ssl_ctx_st SSL_CTX;

namespace ticketflow {
struct RedisTlsConfig;  // config/config.hpp: what a TLS connection trusts and shows
}

namespace ticketflow::redis {

class Transport;

// The OpenSSL client context made from the redis.tls files and shared by every connection;
// reloaded for new connections when a file changes (a rotated certificate). Thread-safe.
class TlsClientContext {
 public:
  // Loads the files; an unreadable or unusable one is an error naming the file and the reason.
  static Result<std::shared_ptr<const TlsClientContext>> make(const RedisTlsConfig& options);
  ~TlsClientContext();
  TlsClientContext(const TlsClientContext&) = delete;
  TlsClientContext& operator=(const TlsClientContext&) = delete;

  // The context for a new connection: made again when a file changed since (if the new files
  // load; otherwise the last good one).
  std::shared_ptr<SSL_CTX> current() const;
  // The name to verify for a connection to `host`.
  const std::string& nameFor(const std::string& host) const;

 private:
  TlsClientContext(RedisTlsConfig options, std::shared_ptr<SSL_CTX> ctx,
                   std::vector<std::filesystem::file_time_type> stamps);
  std::unique_ptr<const RedisTlsConfig> options_;  // (config.hpp's type, held by pointer here)
  mutable std::mutex mutex_;
  mutable std::shared_ptr<SSL_CTX> ctx_;
  mutable std::vector<std::filesystem::file_time_type> stamps_;
};

struct HostPort {
  std::string host;
  int port = 0;
};

struct RedisEndpoint {
  std::string host = "127.0.0.1";
  int port = 6379;
  int db = 0;
  std::string username;
  std::string password;
  bool tls = false;
  // TLS trust for every connection (servers and sentinels) when `tls`; null: the system's store.
  std::shared_ptr<const TlsClientContext> tls_context;
  // Sentinel mode: `host`/`port` are unused; the sentinels name the primary of `master_name`.
  std::vector<HostPort> sentinels;
  std::string master_name;
  std::string sentinel_password;  // for sentinels that require one (requirepass in sentinel.conf)
  // Every pipeline that writes ends with WAIT: its writes count as done only once this many
  // replicas have them (within the timeout; else a retriable error, and a fresh connection).
  // Replication is asynchronous, so without this a failover can lose writes the old primary
  // acknowledged. 0: off.
  int min_replica_acks = 0;
  std::chrono::milliseconds replica_ack_timeout{1000};
};

// Parses redis://[user:password@]host:port/db, rediss:// (TLS), and
// redis+sentinel://[user:password@]host:port[,host:port...]/master-name[/db] (rediss+sentinel://
// for TLS to sentinels and servers; a sentinel's port defaults to 26379).
Result<RedisEndpoint> parseRedisUrl(const std::string& url);

struct Reply {
  enum class Type { kNil, kString, kStatus, kInteger, kArray, kError };
  Type type = Type::kNil;
  std::string str;  // kString, kStatus, kError
  std::int64_t integer = 0;
  std::vector<Reply> elements;

  bool isNil() const { return type == Type::kNil; }
};

// A command's outcome as a Status: the transport's error as it is, an error reply as an internal
// error prefixed with `what`.
Status replyStatus(const Result<Reply>& reply, const char* what);

struct ReaderDeleter {
  void operator()(redisReader* reader) const;
};

class RedisClient {
 public:
  // Connects (to the primary the sentinels name, in sentinel mode) and runs AUTH/SELECT as the
  // endpoint says. Errors are retriable kUnavailable / kTimeout, except a server certificate the
  // configured trust refuses: kInvalidArgument, naming the reason.
  static Result<std::unique_ptr<RedisClient>> connect(const RedisEndpoint& endpoint,
                                                      std::chrono::milliseconds connect_timeout,
                                                      std::chrono::milliseconds command_timeout);

  // Runs one command; a Redis error reply is returned as a Reply of type kError, a broken
  // connection as an Error (and the client must be discarded). A server that can no longer take
  // writes (READONLY: demoted in a failover; MASTERDOWN; LOADING) is an Error too, retriable,
  // and breaks the connection so that the pool reconnects to the current primary.
  Result<Reply> command(const std::vector<std::string>& argv);
  // Sends all commands, then reads all replies (one round trip).
  Result<std::vector<Reply>> pipeline(const std::vector<std::vector<std::string>>& commands);
  // The same, for commands held elsewhere (the batcher's RedisCalls): nothing is copied.
  Result<std::vector<Reply>> pipeline(std::span<const std::vector<std::string>* const> commands);

  bool broken() const { return broken_; }
  // "host:port" of the server this client talks to.
  const std::string& peer() const;

  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

 private:
  explicit RedisClient(std::unique_ptr<Transport> transport);
  static Result<std::unique_ptr<RedisClient>> open(const HostPort& server, const RedisEndpoint& endpoint,
                                                   std::chrono::milliseconds connect_timeout,
                                                   std::chrono::milliseconds command_timeout);
  Result<Reply> readReply();
  // AUTH, the primary check (sentinel mode) and SELECT on a fresh connection.
  Status prepare(const RedisEndpoint& endpoint, bool must_be_primary);

  std::unique_ptr<Transport> transport_;
  std::unique_ptr<redisReader, ReaderDeleter> reader_;
  std::string out_;  // the pipeline being sent, kept to reuse its capacity
  bool broken_ = false;
  int min_replica_acks_ = 0;  // RedisEndpoint::min_replica_acks, once connected
  std::chrono::milliseconds replica_ack_timeout_{0};
};

// The value of `field` in the text of an INFO reply (field "used_memory_human" -> "1.53G");
// nullopt when the reply has no such line.
std::optional<std::string> infoField(std::string_view info, std::string_view field);

}  // namespace ticketflow::redis
