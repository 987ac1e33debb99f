#include "ticketflow/redis/client.hpp"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <regex>

namespace ticketflow::redis {
namespace {

timeval toTimeval(std::chrono::milliseconds ms) {
  return {static_cast<time_t>(ms.count() / 1000), static_cast<suseconds_t>((ms.count() % 1000) * 1000)};
}

Reply convert(const redisReply* r) {
  Reply out;
  switch (r->type) {
    case REDIS_REPLY_STRING: out.type = Reply::Type::kString; out.str.assign(r->str, r->len); break;
    case REDIS_REPLY_STATUS: out.type = Reply::Type::kStatus; out.str.assign(r->str, r->len); break;
    case REDIS_REPLY_ERROR: out.type = Reply::Type::kError; out.str.assign(r->str, r->len); break;
    case REDIS_REPLY_INTEGER: out.type = Reply::Type::kInteger; out.integer = r->integer; break;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::kArray;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(convert(r->element[i]));
      break;
    default: out.type = Reply::Type::kNil; break;
  }
  return out;
}

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};

void appendCommand(redisContext* ctx, const std::vector<std::string>& argv) {
  std::vector<const char*> ptrs;
  std::vector<size_t> lens;
  for (const auto& a : argv) {
    ptrs.push_back(a.data());
    lens.push_back(a.size());
  }
  redisAppendCommandArgv(ctx, static_cast<int>(argv.size()), ptrs.data(), lens.data());
}

}  // namespace

void ContextDeleter::operator()(redisContext* ctx) const { redisFree(ctx); }

Result<RedisEndpoint> parseRedisUrl(const std::string& url) {
  static const std::regex re(R"(^(rediss?)://(?:([^:@/]*)(?::([^@/]*))?@)?([^:/@]+)(?::([0-9]{1,5}))?(?:/([0-9]{1,2}))?/?$)");
  std::smatch m;
  if (!std::regex_match(url, m, re))
    return Error::invalidArgument("not a Redis URL (expected redis://[user:password@]host:port/db)");
  RedisEndpoint e;
  e.tls = m[1] == "rediss";
  e.username = m[2];
  e.password = m[3];
  e.host = m[4];
  if (m[5].matched) e.port = std::stoi(m[5]);
  if (m[6].matched) e.db = std::stoi(m[6]);
  if (e.port <= 0 || e.port > 65535) return Error::invalidArgument("Redis port out of range");
  return e;
}

Result<std::unique_ptr<RedisClient>> RedisClient::connect(const RedisEndpoint& endpoint,
                                                          std::chrono::milliseconds connect_timeout,
                                                          std::chrono::milliseconds command_timeout) {
  if (endpoint.tls)
    return Error::invalidArgument("rediss:// needs TLS, which Debian 12's hiredis 0.14 lacks; use a TLS sidecar (see docs/)");
  redisContext* ctx = redisConnectWithTimeout(endpoint.host.c_str(), endpoint.port, toTimeval(connect_timeout));
  if (!ctx) return Error::unavailable("Redis: out of memory creating a connection");
  std::unique_ptr<RedisClient> client(new RedisClient(ctx));
  if (ctx->err) return Error::unavailable(std::string("Redis connect to ") + endpoint.host + ":" + std::to_string(endpoint.port) + ": " + ctx->errstr);
  redisSetTimeout(ctx, toTimeval(command_timeout));
  if (!endpoint.password.empty()) {
    std::vector<std::string> auth = {"AUTH"};
    if (!endpoint.username.empty()) auth.push_back(endpoint.username);
    auth.push_back(endpoint.password);
    auto r = client->command(auth);
    if (!r) return r.error();
    if (r->type == Reply::Type::kError) return Error::unavailable("Redis AUTH refused");  // never echo the password
  }
  if (endpoint.db != 0) {
    auto r = client->command({"SELECT", std::to_string(endpoint.db)});
    if (!r) return r.error();
    if (r->type == Reply::Type::kError) return Error::unavailable("Redis SELECT: " + r->str);
  }
  return client;
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

Result<std::vector<Reply>> RedisClient::pipeline(std::span<const std::vector<std::string>* const> commands) {
  if (broken_) return Error::unavailable("Redis connection is broken");
  for (const auto* argv : commands) appendCommand(ctx_.get(), *argv);
  std::vector<Reply> out;
  out.reserve(commands.size());
  for (std::size_t i = 0; i < commands.size(); ++i) {
    void* raw = nullptr;
    if (redisGetReply(ctx_.get(), &raw) != REDIS_OK || !raw) {
      broken_ = true;
      const bool timed_out = ctx_->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK);
      std::string msg = std::string("Redis: ") + (ctx_->errstr[0] ? ctx_->errstr : "connection lost");
      return timed_out ? Error::timeout(msg) : Error::unavailable(msg);
    }
    std::unique_ptr<redisReply, ReplyDeleter> reply(static_cast<redisReply*>(raw));
    out.push_back(convert(reply.get()));
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

}  // namespace ticketflow::redis
