#include "ticketflow/redis/written_markers.hpp"

namespace ticketflow::redis {
namespace {

Error markersDown(const std::string& why) {
  return Error::unavailable("idempotency markers: " + why).asOutage("redis");
}

}  // namespace

RedisWrittenMarkers::RedisWrittenMarkers(std::shared_ptr<RedisPool> pool, std::string key_prefix, std::int64_t ttl_s)
    : key_prefix_(std::move(key_prefix)), ttl_s_(std::to_string(ttl_s)), batcher_(std::move(pool)) {}

std::string RedisWrittenMarkers::keyFor(const std::string& tenant, const std::string& ticket_id,
                                        std::int64_t revision) const {
  return key_prefix_ + "written:" + tenant + ":" + ticket_id + ":" + std::to_string(revision);
}

void RedisWrittenMarkers::read(const std::string& key, std::function<void(Result<Marks>)> done) {
  batcher_.submit({RedisCall::command({"HGETALL", key})}, [done = std::move(done)](Result<std::vector<Reply>> replies) {
    if (!replies) return done(markersDown(replies.error().message));
    const Reply& have = replies->front();
    if (have.type == Reply::Type::kError) return done(markersDown(have.str));
    Marks marks;
    for (std::size_t i = 0; i + 1 < have.elements.size(); i += 2)
      marks[have.elements[i].str] = have.elements[i + 1].str;
    done(std::move(marks));
  });
}

Status RedisWrittenMarkers::markPending(const std::string& key,
                                        const std::vector<std::pair<std::string, std::string>>& pending) {
  std::vector<RedisCall> calls;
  if (!pending.empty()) {
    std::vector<std::string> hset = {"HSET", key};
    for (const auto& [field, mark] : pending) {
      hset.push_back(field);
      hset.push_back(mark);
    }
    calls.push_back(RedisCall::command(std::move(hset)));
  }
  // The TTL is renewed on every attempt, so a sink down for longer than it keeps its marks.
  calls.push_back(RedisCall::command({"EXPIRE", key, ttl_s_}));
  auto stored = batcher_.run(std::move(calls));
  if (!stored) return markersDown(stored.error().message);
  if (stored->front().type == Reply::Type::kError) return markersDown(stored->front().str);
  return {};
}

void RedisWrittenMarkers::markWritten(const std::string& key, const std::vector<std::string>& sinks,
                                      const std::string& at) {
  if (sinks.empty()) return;
  std::vector<std::string> hset = {"HSET", key};
  for (const auto& sink : sinks) {
    hset.push_back(sink);
    hset.push_back(at);
  }
  batcher_.submit({RedisCall::command(std::move(hset)), RedisCall::command({"EXPIRE", key, ttl_s_})}, {});
}

}  // namespace ticketflow::redis
