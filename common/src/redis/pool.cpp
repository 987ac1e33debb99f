#include "ticketflow/redis/pool.hpp"

#include <algorithm>

#include <Poco/DigestEngine.h>
#include <Poco/SHA1Engine.h>

namespace ticketflow::redis {

Result<RedisPoolOptions> RedisPoolOptions::fromConfig(const RedisConfig& config) {
  auto endpoint = parseRedisUrl(config.url);
  if (!endpoint) return endpoint.error();
  RedisPoolOptions o;
  o.endpoint = *endpoint;
  if (o.endpoint.password.empty()) o.endpoint.password = config.password;
  o.endpoint.sentinel_password = config.sentinel_password;
  o.endpoint.min_replica_acks = config.min_replica_acks;
  o.endpoint.replica_ack_timeout = std::chrono::milliseconds(config.replica_ack_timeout_ms);
  if (o.endpoint.tls) {
    auto tls = TlsClientContext::make(config.tls);
    if (!tls) return tls.error();
    o.endpoint.tls_context = *tls;
  }
  o.pool_size = std::max(1, config.pool_size);
  o.connect_timeout = std::chrono::milliseconds(config.connect_timeout_ms);
  o.command_timeout = std::chrono::milliseconds(config.command_timeout_ms);
  o.acquire_timeout = std::chrono::milliseconds(std::max(config.connect_timeout_ms, config.command_timeout_ms));
  return o;
}

RedisScript::RedisScript(std::string source) : source_(std::move(source)) {
  Poco::SHA1Engine engine;
  engine.update(source_);
  sha1_ = Poco::DigestEngine::digestToHex(engine.digest());
}

RedisPool::Lease::~Lease() {
  if (pool_ && client_) pool_->giveBack(std::move(client_));
}

RedisPool::RedisPool(RedisPoolOptions options, const Clock& clock) : options_(std::move(options)), clock_(clock) {}

Result<RedisPool::Lease> RedisPool::acquire() {
  std::unique_lock lock(mutex_);
  // The condition variable waits in real time whatever clock_ is.
  const auto deadline = std::chrono::steady_clock::now() + options_.acquire_timeout;
  while (true) {
    if (!idle_.empty()) {
      auto client = std::move(idle_.back());
      idle_.pop_back();
      return Lease(this, std::move(client));
    }
    if (open_ < options_.pool_size) break;
    if (available_.wait_until(lock, deadline) == std::cv_status::timeout)
      return Error::timeout("Redis pool: all " + std::to_string(options_.pool_size) +
                            " connections busy; raise redis.pool_size");
  }
  if (clock_.steadyNow() < next_connect_at_) {
    ++stats_.fast_failures;
    return Error::unavailable("Redis unreachable; reconnecting with backoff");
  }
  ++open_;
  lock.unlock();
  auto connected = RedisClient::connect(options_.endpoint, options_.connect_timeout, options_.command_timeout);
  lock.lock();
  if (!connected) {
    --open_;
    ++stats_.connect_failures;
    backoff_ = backoff_.count() == 0 ? options_.backoff_initial : std::min(options_.backoff_max, backoff_ * 2);
    next_connect_at_ = clock_.steadyNow() + backoff_;
    available_.notify_one();
    // Retriable even when the server's certificate is refused: at run time that is an outage
    // until an operator renews the certificate or the trust, not a reason to drop messages.
    // (Start-up refuses an untrusted server outright: Pipeline checks it once.)
    Error error = connected.error();
    error.retriable = true;
    return error;
  }
  ++stats_.connects;
  backoff_ = std::chrono::milliseconds(0);
  return Lease(this, std::move(connected.value()));
}

void RedisPool::giveBack(std::unique_ptr<RedisClient> client) {
  std::lock_guard lock(mutex_);
  if (client->broken()) {
    --open_;
    ++stats_.discarded;
    // The server may be gone: drop the idle ones too, they would fail on first use.
    stats_.discarded += idle_.size();
    open_ -= static_cast<int>(idle_.size());
    idle_.clear();
  } else {
    idle_.push_back(std::move(client));
  }
  available_.notify_one();
}

Result<Reply> RedisPool::command(const std::vector<std::string>& argv) {
  auto lease = acquire();
  if (!lease) return lease.error();
  return (*lease)->command(argv);
}

Result<std::vector<Reply>> RedisPool::pipeline(const std::vector<std::vector<std::string>>& commands) {
  auto lease = acquire();
  if (!lease) return lease.error();
  return (*lease)->pipeline(commands);
}

Result<Reply> RedisPool::eval(const RedisScript& script, const std::vector<std::string>& keys,
                              const std::vector<std::string>& args) {
  auto lease = acquire();
  if (!lease) return lease.error();
  return evalScript(**lease, script, keys, args);
}

RedisCall RedisCall::eval(const RedisScript& script, const std::vector<std::string>& keys,
                          const std::vector<std::string>& args) {
  RedisCall call;
  call.script = &script;
  call.argv.reserve(3 + keys.size() + args.size());
  call.argv.push_back("EVALSHA");
  call.argv.push_back(script.sha1());
  call.argv.push_back(std::to_string(keys.size()));
  call.argv.insert(call.argv.end(), keys.begin(), keys.end());
  call.argv.insert(call.argv.end(), args.begin(), args.end());
  return call;
}

Result<std::vector<Reply>> RedisPool::run(const std::vector<RedisCall>& calls) {
  auto lease = acquire();
  if (!lease) return lease.error();
  std::vector<const std::vector<std::string>*> commands;
  commands.reserve(calls.size());
  for (const auto& c : calls) commands.push_back(&c.argv);
  auto replies = (*lease)->pipeline(commands);
  if (!replies) return replies;
  for (std::size_t i = 0; i < calls.size(); ++i) {
    Reply& r = (*replies)[i];
    if (!calls[i].script || r.type != Reply::Type::kError || r.str.rfind("NOSCRIPT", 0) != 0) continue;
    std::vector<std::string> argv = calls[i].argv;
    argv[0] = "EVAL";
    argv[1] = calls[i].script->source();  // EVAL also caches it for the next EVALSHA
    auto again = (*lease)->command(argv);
    if (!again) return again.error();
    r = std::move(*again);
  }
  return replies;
}

RedisPool::Stats RedisPool::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

Result<Reply> evalScript(RedisClient& client, const RedisScript& script, const std::vector<std::string>& keys,
                         const std::vector<std::string>& args) {
  std::vector<std::string> argv;
  argv.reserve(3 + keys.size() + args.size());
  argv.push_back("EVALSHA");
  argv.push_back(script.sha1());
  argv.push_back(std::to_string(keys.size()));
  argv.insert(argv.end(), keys.begin(), keys.end());
  argv.insert(argv.end(), args.begin(), args.end());
  auto reply = client.command(argv);
  if (!reply) return reply;
  if (reply->type == Reply::Type::kError && reply->str.rfind("NOSCRIPT", 0) == 0) {
    argv[0] = "EVAL";
    argv[1] = script.source();  // EVAL also caches it for the next EVALSHA
    return client.command(argv);
  }
  return reply;
}

}  // namespace ticketflow::redis
