#include "ticketflow/redis/client.hpp"

#include <algorithm>
#include <cctype>
#include <regex>
#include <string_view>

#include <hiredis/hiredis.h>

#include "ticketflow/config/config.hpp"
#include "ticketflow/core/percent_encoding.hpp"
#include "transport.hpp"

namespace ticketflow::redis {
namespace {

Reply convert(const redisReply* r) {
  Reply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = Reply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = Reply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = Reply::Type::kError;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = Reply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::kArray;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(convert(r->element[i]));
      break;
    default:
      out.type = Reply::Type::kNil;
      break;
  }
  return out;
}

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};

// RESP framing of one command: *<argc> then $<length> and the bytes of each argument.
void appendCommand(std::string& out, const std::vector<std::string>& argv) {
  out += '*';
  out += std::to_string(argv.size());
  out += "\r\n";
  for (const auto& arg : argv) {
    out += '$';
    out += std::to_string(arg.size());
    out += "\r\n";
    out += arg;
    out += "\r\n";
  }
}

// Error replies that mean "this server cannot take the command now, another (or this one later)
// can": a primary demoted by a failover, a replica cut off from its primary, a dataset loading.
bool serverCannotServeNow(const Reply& reply) {
  if (reply.type != Reply::Type::kError) return false;
  for (const std::string_view prefix : {"READONLY", "MASTERDOWN", "LOADING"})
    if (std::string_view(reply.str).substr(0, prefix.size()) == prefix) return true;
  return false;
}

// Commands that write nothing: a pipeline of only these needs no WAIT.
bool isReadOnly(std::string_view command) {
  static constexpr std::string_view kReadOnly[] = {
      "GET",   "MGET",   "HGET",   "HMGET", "HGETALL", "HKEYS", "HLEN",     "EXISTS", "PING",   "INFO",
      "KEYS",  "SCAN",   "LRANGE", "LLEN",  "TTL",     "PTTL",  "SMEMBERS", "SCARD",  "ZRANGE", "ZRANGEBYSCORE",
      "ZCARD", "ZSCORE", "DBSIZE", "TYPE",  "STRLEN",  "ROLE",  "SELECT",   "AUTH"};
  for (const auto name : kReadOnly) {
    if (name.size() != command.size()) continue;
    bool same = true;
    for (std::size_t i = 0; i < name.size() && same; ++i)
      same = name[i] == static_cast<char>(std::toupper(static_cast<unsigned char>(command[i])));
    if (same) return true;
  }
  return false;
}

Result<int> parsePort(std::string_view text) {
  int port = 0;
  for (const char c : text) {
    if (c < '0' || c > '9' || port > 65535) return Error::invalidArgument("Redis port out of range");
    port = port * 10 + (c - '0');
  }
  if (text.empty() || port <= 0 || port > 65535) return Error::invalidArgument("Redis port out of range");
  return port;
}

Result<HostPort> parseHostPort(std::string_view text, int default_port) {
  HostPort out;
  out.port = default_port;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {  // an IPv6 address: [::1]:6379
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos) return Error::invalidArgument("not a Redis URL: an unclosed [ in a host");
    out.host = std::string(text.substr(1, close - 1));
    const std::string_view rest = text.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') return Error::invalidArgument("not a Redis URL: text after ]");
    if (!rest.empty()) port_text = rest.substr(1);
  } else {
    const std::size_t colon = text.rfind(':');
    out.host = std::string(text.substr(0, colon));
    if (colon != std::string_view::npos) port_text = text.substr(colon + 1);
  }
  if (!port_text.empty() || (!text.empty() && text.back() == ':')) {
    auto port = parsePort(port_text);
    if (!port) return port.error();
    out.port = *port;
  }
  if (out.host.empty()) return Error::invalidArgument("not a Redis URL: a host is empty");
  return out;
}

}  // namespace

void ReaderDeleter::operator()(redisReader* reader) const {
  redisReaderFree(reader);
}

Result<RedisEndpoint> parseRedisUrl(const std::string& url) {
  static const std::regex re(
      R"(^(rediss?)(\+sentinel)?://(?:([^:@/]*)(?::([^@/]*))?@)?([^/@]+)(?:/([^/]+))?(?:/([0-9]{1,2}))?/?$)");
  std::smatch m;
  if (url.size() > 2048 || !std::regex_match(url, m, re))
    return Error::invalidArgument(
        "not a Redis URL (expected redis://[user:password@]host:port/db, rediss://..., or "
        "redis+sentinel://[user:password@]host:port[,host:port...]/master-name[/db])");
  RedisEndpoint e;
  e.tls = m[1] == "rediss";
  // The user and password are percent-decoded, as in any URL (a password with '@' is "%40").
  auto username = percentDecode(m[3].str());
  auto password = percentDecode(m[4].str());
  if (!username || !password)
    return Error::invalidArgument("not a Redis URL: in the user or password, " +
                                  (username ? password : username).error().message);
  e.username = *username;
  e.password = *password;
  const std::string hosts = m[5];
  const bool sentinel = m[2].matched;
  std::string db = m[7];
  if (sentinel) {
    if (!m[6].matched) return Error::invalidArgument("a redis+sentinel:// URL names the primary: .../master-name[/db]");
    e.master_name = m[6];
    for (std::size_t start = 0; start <= hosts.size();) {
      const std::size_t comma = std::min(hosts.find(',', start), hosts.size());
      auto node = parseHostPort(std::string_view(hosts).substr(start, comma - start), 26379);
      if (!node) return node.error();
      e.sentinels.push_back(*node);
      start = comma + 1;
    }
  } else {
    // Without sentinels the second path segment is not allowed, and the first is the db.
    if (m[7].matched) return Error::invalidArgument("not a Redis URL: one /db at most");
    if (m[6].matched) db = m[6];
    if (hosts.find(',') != std::string::npos)
      return Error::invalidArgument("several hosts need redis+sentinel://host:port,host:port/master-name");
    auto node = parseHostPort(hosts, 6379);
    if (!node) return node.error();
    e.host = node->host;
    e.port = node->port;
  }
  if (!db.empty()) {
    if (db.size() > 2 || db.find_first_not_of("0123456789") != std::string::npos)
      return Error::invalidArgument("not a Redis URL: the db is a number 0-99");
    e.db = std::stoi(db);
  }
  return e;
}

RedisClient::RedisClient(std::unique_ptr<Transport> transport)
    : transport_(std::move(transport)), reader_(redisReaderCreate()) {}

RedisClient::~RedisClient() = default;

const std::string& RedisClient::peer() const {
  return transport_->peer();
}

Result<std::unique_ptr<RedisClient>> RedisClient::open(const HostPort& server, const RedisEndpoint& endpoint,
                                                       std::chrono::milliseconds connect_timeout,
                                                       std::chrono::milliseconds command_timeout) {
  std::shared_ptr<const TlsClientContext> tls = endpoint.tls_context;
  if (endpoint.tls && !tls) {
    auto system_trust = TlsClientContext::make(RedisTlsConfig{});
    if (!system_trust) return system_trust.error();
    tls = *system_trust;
  }
  // A pipeline ending in WAIT may take the replicas' time on top of its own.
  const auto io_timeout =
      command_timeout + (endpoint.min_replica_acks > 0 ? endpoint.replica_ack_timeout : std::chrono::milliseconds(0));
  auto transport =
      Transport::open(server.host, server.port, endpoint.tls ? tls.get() : nullptr, connect_timeout, io_timeout);
  if (!transport) return transport.error();
  std::unique_ptr<RedisClient> client(new RedisClient(std::move(*transport)));
  if (!client->reader_) return Error::unavailable("Redis: out of memory creating a reply reader");
  return client;
}

Result<std::unique_ptr<RedisClient>> RedisClient::connect(const RedisEndpoint& endpoint,
                                                          std::chrono::milliseconds connect_timeout,
                                                          std::chrono::milliseconds command_timeout) {
  if (endpoint.sentinels.empty()) {
    auto client = open({endpoint.host, endpoint.port}, endpoint, connect_timeout, command_timeout);
    if (!client) return client.error();
    if (auto ready = (*client)->prepare(endpoint, false); !ready) return ready.error();
    return client;
  }
  // Ask each sentinel in turn for the current primary and take the first answer whose server
  // says it is the primary: one sentinel down, untrusted or stale must not stop the others.
  std::string failures;
  bool all_untrusted = true;
  for (const auto& sentinel : endpoint.sentinels) {
    auto client = [&]() -> Result<std::unique_ptr<RedisClient>> {
      auto s = open(sentinel, endpoint, connect_timeout, command_timeout);
      if (!s) return s.error();
      if (!endpoint.sentinel_password.empty()) {
        auto auth = (*s)->command({"AUTH", endpoint.sentinel_password});
        if (!auth) return auth.error();
        if (auth->type == Reply::Type::kError) return Error::unavailable("sentinel AUTH refused");
      }
      auto named = (*s)->command({"SENTINEL", "get-master-addr-by-name", endpoint.master_name});
      if (!named) return named.error();
      if (named->type == Reply::Type::kError) return Error::unavailable("sentinel: " + named->str);
      if (named->type != Reply::Type::kArray || named->elements.size() != 2)
        return Error::unavailable("sentinel does not know the primary \"" + endpoint.master_name + "\"");
      auto port = parsePort(named->elements[1].str);
      if (!port) return Error::unavailable("sentinel named a bad port");
      auto primary = open({named->elements[0].str, *port}, endpoint, connect_timeout, command_timeout);
      if (!primary) return primary.error();
      if (auto ready = (*primary)->prepare(endpoint, true); !ready) return ready.error();
      return primary;
    }();
    if (client) return client;
    all_untrusted = all_untrusted && client.error().code == ErrorCode::kInvalidArgument;
    failures += (failures.empty() ? "" : "; ") + sentinel.host + ":" + std::to_string(sentinel.port) + ": " +
                client.error().message;
  }
  const std::string message = "Redis Sentinel: no sentinel led to the primary (" + failures + ")";
  // Only when every path failed on trust is it a configuration error (start-up stops on it).
  return all_untrusted ? Error::invalidArgument(message) : Error::unavailable(message);
}

Status RedisClient::prepare(const RedisEndpoint& endpoint, bool must_be_primary) {
  if (!endpoint.password.empty()) {
    std::vector<std::string> auth = {"AUTH"};
    if (!endpoint.username.empty()) auth.push_back(endpoint.username);
    auth.push_back(endpoint.password);
    auto r = command(auth);
    if (!r) return r.error();
    if (r->type == Reply::Type::kError) return Error::unavailable("Redis AUTH refused");  // never echo the password
  }
  if (must_be_primary) {
    // A sentinel's answer can be stale during a failover: talk only to a server that says it is
    // the primary, or writes would fail (or, worse, land on a replica about to be resynced).
    auto role = command({"ROLE"});
    if (!role) return role.error();
    if (role->type != Reply::Type::kArray || role->elements.empty() || role->elements[0].str != "master")
      return Error::unavailable("Redis " + peer() + " is not the primary (yet): a failover is in progress");
  }
  if (endpoint.db != 0) {
    auto r = command({"SELECT", std::to_string(endpoint.db)});
    if (!r) return r.error();
    if (r->type == Reply::Type::kError) return Error::unavailable("Redis SELECT: " + r->str);
  }
  min_replica_acks_ = endpoint.min_replica_acks;
  replica_ack_timeout_ = endpoint.replica_ack_timeout;
  return {};
}

Result<Reply> RedisClient::command(const std::vector<std::string>& argv) {
  auto replies = pipeline({argv});
  if (!replies) return replies.error();
  return std::move(replies->front());
}

Result<std::vector<Reply>> RedisClient::pipeline(const std::vector<std::vector<std::string>>& commands) {
  std::vector<const std::vector<std::string>*> argvs;
  argvs.reserve(commands.size());
  for (const auto& argv : commands) argvs.push_back(&argv);
  return pipeline(argvs);
}

Result<Reply> RedisClient::readReply() {
  char buffer[16384];
  while (true) {
    void* raw = nullptr;
    if (redisReaderGetReply(reader_.get(), &raw) != REDIS_OK)
      return Error::unavailable("Redis " + peer() + ": protocol error: " + reader_->errstr);
    if (raw) {
      std::unique_ptr<redisReply, ReplyDeleter> reply(static_cast<redisReply*>(raw));
      return convert(reply.get());
    }
    auto n = transport_->readSome(buffer, sizeof buffer);
    if (!n) return n.error();
    if (redisReaderFeed(reader_.get(), buffer, *n) != REDIS_OK)
      return Error::unavailable("Redis " + peer() + ": protocol error: " + reader_->errstr);
  }
}

Result<std::vector<Reply>> RedisClient::pipeline(std::span<const std::vector<std::string>* const> commands) {
  if (broken_) return Error::unavailable("Redis connection is broken");
  out_.clear();
  bool writes = false;
  for (const auto* argv : commands) {
    appendCommand(out_, *argv);
    writes = writes || (!argv->empty() && !isReadOnly(argv->front()));
  }
  const bool wait_for_replicas = writes && min_replica_acks_ > 0;
  if (wait_for_replicas)
    appendCommand(out_, {"WAIT", std::to_string(min_replica_acks_), std::to_string(replica_ack_timeout_.count())});
  if (auto sent = transport_->writeAll(out_); !sent) {
    broken_ = true;
    return sent.error();
  }
  if (out_.capacity() > (1 << 20)) std::string().swap(out_);  // keep no large buffer between calls
  std::vector<Reply> out;
  out.reserve(commands.size() + 1);
  for (std::size_t i = 0; i < commands.size() + (wait_for_replicas ? 1 : 0); ++i) {
    auto reply = readReply();
    if (!reply) {
      broken_ = true;
      return reply.error();
    }
    out.push_back(std::move(*reply));
  }
  for (const auto& reply : out) {
    if (serverCannotServeNow(reply)) {
      broken_ = true;
      return Error::unavailable("Redis " + peer() + ": " + reply.str);
    }
  }
  if (wait_for_replicas) {
    const Reply acks = std::move(out.back());
    out.pop_back();
    if (acks.type != Reply::Type::kInteger || acks.integer < min_replica_acks_) {
      // The writes were applied here but may not survive a failover: the caller retries (our
      // writes are idempotent), on a fresh connection, so that a primary cut off from its
      // replicas, or demoted meanwhile, is looked up again through the sentinels.
      broken_ = true;
      return Error::unavailable("Redis " + peer() + ": the writes reached " +
                                (acks.type == Reply::Type::kInteger ? std::to_string(acks.integer) : acks.str) +
                                " of " + std::to_string(min_replica_acks_) + " replicas within " +
                                std::to_string(replica_ack_timeout_.count()) + " ms (redis.min_replica_acks)");
    }
  }
  return out;
}

std::optional<std::string> infoField(std::string_view info, std::string_view field) {
  // INFO is "name:value\r\n" lines; a field matches at a line's start only.
  for (std::size_t start = 0; start < info.size();) {
    const std::size_t end = std::min(info.find('\n', start), info.size());
    std::string_view line = info.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() > field.size() && line.substr(0, field.size()) == field && line[field.size()] == ':')
      return std::string(line.substr(field.size() + 1));
    start = end + 1;
  }
  return std::nullopt;
}

Status replyStatus(const Result<Reply>& reply, const char* what) {
  if (!reply) return reply.error();
  if (reply->type == Reply::Type::kError) return Error::internal(std::string(what) + ": " + reply->str);
  return {};
}

}  // namespace ticketflow::redis
