// Results, ticket updates and dead letters: what a tier answers, what the result writers send,
// and what could not be processed; built, written and parsed.
#include <algorithm>
#include <cctype>
#include <sstream>

#include "message_codec.hpp"
#include "ticketflow/core/base64.hpp"
#include "ticketflow/core/clock.hpp"
#include "ticketflow/core/json_fields.hpp"
#include "ticketflow/core/json_parse.hpp"
#include "ticketflow/core/json_writer.hpp"
#include "ticketflow/core/utf8.hpp"
#include "ticketflow/domain/messages.hpp"
#include "ticketflow/schema/validator.hpp"

namespace ticketflow {

using detail::answerFrom;
using detail::classificationFrom;
using detail::parseAs;
using detail::parseErrorCode;
using detail::routeFrom;
using detail::sourceFrom;
using detail::usageFrom;
using detail::writeAnswer;
using detail::writeClassification;
using detail::writeRoute;
using detail::writeSource;
using detail::writeUsage;
using nlohmann::json;

std::string toJson(const TicketResult& r) {
  JsonWriter w;
  w.beginObject();
  writeAnswer(w.key("answer"), r.answer);
  w.field("attempts", r.attempts);
  w.key("cache").beginObject();
  if (r.cache.saved_micro_usd) w.field("saved_micro_usd", r.cache.saved_micro_usd);
  if (r.cache.similarity) w.field("similarity", *r.cache.similarity);
  w.fieldIfNotEmpty("source_ticket_id", r.cache.source_ticket_id).field("status", cacheStatusName(r.cache.status));
  w.endObject();
  writeClassification(w.key("classification"), r.classification);
  w.field("completed_at", r.completed_at).field("cost_micro_usd", r.cost_micro_usd).field("degraded", r.degraded);
  w.fieldIfNotEmpty("degraded_reason", r.degraded_reason).field("latency_ms", r.latency_ms);
  w.fieldIfNotEmpty("model", r.model).fieldIfNotEmpty("provider", r.provider);
  w.field("revision", r.revision);
  if (!r.route.routed_tier.empty()) writeRoute(w.key("route"), r.route);
  w.field("simulated", r.simulated);
  if (r.source) writeSource(w.key("source"), *r.source);
  w.field("tenant", r.tenant);
  if (r.ticket_chars_cut) w.field("ticket_chars_cut", r.ticket_chars_cut);
  w.field("ticket_id", r.ticket_id).field("tier", r.tier).field("trace_id", r.trace_id);
  writeUsage(w.key("usage"), r.usage);
  w.endObject();
  return w.take();
}

TicketResult resultFor(const RoutedTicket& routed, std::chrono::system_clock::time_point now) {
  TicketResult r;
  r.ticket_id = routed.ticket.id;
  r.tenant = routed.ticket.tenant;
  r.revision = routed.ticket.revision;
  r.source = routed.ticket.source;
  r.trace_id = routed.trace_id;
  r.classification = routed.classification;
  r.tier = routed.tier;
  r.route = routed.route;
  if (auto received = parseRfc3339(routed.received_at))
    r.latency_ms =
        std::max<std::int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(now - *received).count());
  r.completed_at = formatRfc3339(now);
  return r;
}

TicketResult handOffResult(const RoutedTicket& routed, const std::string& reason, MicroUsd spent,
                           std::chrono::system_clock::time_point now) {
  TicketResult r = resultFor(routed, now);
  r.answer.summary = "Not triaged by a model: " + utf8Prefix(reason, 1500);
  r.answer.needs_human = true;
  r.answer.needs_human_reason = utf8Prefix(reason, 2000);
  r.answer.confidence = 0;
  r.cost_micro_usd = spent;
  return r;
}

TicketUpdate TicketUpdate::fromResult(const TicketResult& r, std::string updated_at) {
  TicketUpdate u;
  u.ticket_id = r.ticket_id;
  u.tenant = r.tenant;
  u.revision = r.revision;
  u.source = r.source;
  u.trace_id = r.trace_id;
  u.category = r.classification.category;
  u.answer_category = r.answer.category_check;
  u.difficulty = r.classification.difficulty;
  u.confidence = r.classification.confidence;
  u.tier = r.tier;
  u.route = r.route;
  u.model = r.model;
  u.provider = r.provider;
  u.cache = r.cache.status;
  u.cache_source_ticket_id = r.cache.source_ticket_id;
  u.cache_saved_micro_usd = r.cache.saved_micro_usd;
  u.cost_micro_usd = r.cost_micro_usd;
  u.usage = r.usage;
  u.latency_ms = r.latency_ms;
  u.degraded = r.degraded;
  u.degraded_reason = r.degraded_reason;
  u.ticket_chars_cut = r.ticket_chars_cut;
  u.needs_human = r.answer.needs_human;
  u.needs_human_reason = r.answer.needs_human_reason;
  u.summary = r.answer.summary;
  u.reply = r.answer.reply;
  u.resolution_steps = r.answer.resolution_steps;
  u.simulated = r.simulated;
  u.updated_at = std::move(updated_at);
  return u;
}

std::string toJson(const TicketUpdate& u) {
  JsonWriter w;
  w.beginObject().fieldIfNotEmpty("answer_category", u.answer_category).field("cache", cacheStatusName(u.cache));
  if (u.cache_saved_micro_usd) w.field("cache_saved_micro_usd", u.cache_saved_micro_usd);
  w.fieldIfNotEmpty("cache_source_ticket_id", u.cache_source_ticket_id);
  w.field("category", u.category).field("confidence", u.confidence).field("cost_micro_usd", u.cost_micro_usd);
  w.field("degraded", u.degraded).fieldIfNotEmpty("degraded_reason", u.degraded_reason);
  w.field("difficulty", difficultyName(u.difficulty)).field("latency_ms", u.latency_ms);
  w.fieldIfNotEmpty("model", u.model).field("needs_human", u.needs_human);
  w.fieldIfNotEmpty("needs_human_reason", u.needs_human_reason).fieldIfNotEmpty("provider", u.provider);
  w.field("reply", u.reply).field("resolution_steps", u.resolution_steps).field("revision", u.revision);
  if (!u.route.routed_tier.empty()) writeRoute(w.key("route"), u.route);
  w.field("simulated", u.simulated);
  if (u.source) writeSource(w.key("source"), *u.source);
  w.field("summary", u.summary).field("tenant", u.tenant);
  if (u.ticket_chars_cut) w.field("ticket_chars_cut", u.ticket_chars_cut);
  w.field("ticket_id", u.ticket_id).field("tier", u.tier);
  w.field("trace_id", u.trace_id).field("updated_at", u.updated_at);
  writeUsage(w.key("usage"), u.usage);
  w.endObject();
  return w.take();
}

void truncatePayload(DeadLetter& d, std::size_t max_bytes) {
  auto cut = [max_bytes](std::string& s) {
    if (s.size() <= max_bytes) return false;
    // Text stays text: it ends on a character boundary.
    s.resize(isValidUtf8(s) ? utf8BytePrefix(s, max_bytes).size() : max_bytes);
    return true;
  };
  const std::size_t original = d.payload.size();
  if (cut(d.payload)) {
    d.payload_bytes = d.payload_truncated ? d.payload_bytes : static_cast<std::int64_t>(original);
    d.payload_truncated = true;
  }
  cut(d.key);
}

std::string toJson(const DeadLetter& d) {
  const bool text = isValidUtf8(d.payload);
  JsonWriter w;
  w.beginObject().field("attempts", d.attempts).field("error", d.error);
  w.field("error_class", errorCodeName(d.error_class)).field("failed_at", d.failed_at);
  w.field("payload", text ? d.payload : base64Encode(d.payload));
  if (d.payload_truncated) w.field("payload_bytes", d.payload_bytes);
  w.field("payload_encoding", text ? "utf-8" : "base64");
  if (d.payload_truncated) w.field("payload_truncated", true);
  w.key("source").beginObject();
  if (!d.key.empty()) w.field("key", isValidUtf8(d.key) ? d.key : base64Encode(d.key));
  w.field("offset", d.offset).field("partition", d.partition).field("topic", d.topic).endObject();
  w.field("stage", d.stage).fieldIfNotEmpty("ticket_id", d.ticket_id).fieldIfNotEmpty("trace_id", d.trace_id);
  w.endObject();
  return w.take();
}

Result<TicketResult> parseTicketResult(std::string_view bytes) {
  return parseAs<TicketResult>(bytes, "result.schema.json", [](const json& j) {
    TicketResult r;
    r.ticket_id = j["ticket_id"];
    r.tenant = j["tenant"];
    r.revision = fieldAs<std::int64_t>(j["revision"], "revision");
    if (j.contains("source")) r.source = sourceFrom(j["source"]);
    r.trace_id = j["trace_id"];
    r.classification = classificationFrom(j["classification"]);
    r.tier = j["tier"];
    if (j.contains("route")) r.route = routeFrom(j["route"]);
    readIfPresent(j, "model", r.model);
    readIfPresent(j, "provider", r.provider);
    const json& c = j["cache"];
    r.cache.status = parseCacheStatus(c["status"].get<std::string>());
    if (c.contains("similarity")) r.cache.similarity = c["similarity"].get<double>();
    readIfPresent(c, "source_ticket_id", r.cache.source_ticket_id);
    readIfPresent(c, "saved_micro_usd", r.cache.saved_micro_usd);
    r.answer = answerFrom(j["answer"]);
    r.cost_micro_usd = fieldAs<MicroUsd>(j["cost_micro_usd"], "cost_micro_usd");
    r.usage = usageFrom(j["usage"]);
    r.latency_ms = fieldAs<std::int64_t>(j["latency_ms"], "latency_ms");
    readIfPresent(j, "attempts", r.attempts);
    r.degraded = j["degraded"];
    readIfPresent(j, "degraded_reason", r.degraded_reason);
    readIfPresent(j, "ticket_chars_cut", r.ticket_chars_cut);
    r.simulated = j["simulated"];
    r.completed_at = j["completed_at"];
    return r;
  });
}

Result<TicketUpdate> parseTicketUpdate(std::string_view bytes) {
  return parseAs<TicketUpdate>(bytes, "ticket_update.schema.json", [](const json& j) {
    TicketUpdate u;
    u.ticket_id = j["ticket_id"];
    u.tenant = j["tenant"];
    u.revision = fieldAs<std::int64_t>(j["revision"], "revision");
    if (j.contains("source")) u.source = sourceFrom(j["source"]);
    u.trace_id = j["trace_id"];
    u.category = j["category"];
    readIfPresent(j, "answer_category", u.answer_category);
    u.difficulty = parseDifficulty(j["difficulty"].get<std::string>()).value_or(Difficulty::kMedium);
    u.confidence = j["confidence"];
    u.tier = j["tier"];
    if (j.contains("route")) u.route = routeFrom(j["route"]);
    readIfPresent(j, "model", u.model);
    readIfPresent(j, "provider", u.provider);
    u.cache = parseCacheStatus(j["cache"].get<std::string>());
    readIfPresent(j, "cache_source_ticket_id", u.cache_source_ticket_id);
    readIfPresent(j, "cache_saved_micro_usd", u.cache_saved_micro_usd);
    u.cost_micro_usd = fieldAs<MicroUsd>(j["cost_micro_usd"], "cost_micro_usd");
    u.usage = usageFrom(j["usage"]);
    u.latency_ms = fieldAs<std::int64_t>(j["latency_ms"], "latency_ms");
    u.degraded = j["degraded"];
    readIfPresent(j, "degraded_reason", u.degraded_reason);
    readIfPresent(j, "ticket_chars_cut", u.ticket_chars_cut);
    u.needs_human = j["needs_human"];
    readIfPresent(j, "needs_human_reason", u.needs_human_reason);
    u.summary = j["summary"];
    u.reply = j["reply"];
    u.resolution_steps = j["resolution_steps"].get<std::vector<std::string>>();
    u.simulated = j["simulated"];
    u.updated_at = j["updated_at"];
    return u;
  });
}

Result<DeadLetter> parseDeadLetter(std::string_view bytes) {
  return parseAs<DeadLetter>(bytes, "dead_letter.schema.json", [](const json& j) {
    DeadLetter d;
    d.stage = j["stage"];
    d.error_class = parseErrorCode(j["error_class"]);
    d.error = j["error"];
    d.attempts = fieldAs<int>(j["attempts"], "attempts");
    d.topic = j["source"]["topic"];
    d.partition = fieldAs<std::int32_t>(j["source"]["partition"], "partition");
    d.offset = fieldAs<std::int64_t>(j["source"]["offset"], "offset");
    readIfPresent(j["source"], "key", d.key);
    const std::string payload = j["payload"];
    if (j["payload_encoding"] == "base64") {
      auto decoded = base64Decode(payload);
      if (!decoded) throw std::invalid_argument("field 'payload': not valid base64");
      d.payload = std::move(*decoded);
    } else {
      d.payload = payload;
    }
    readIfPresent(j, "payload_truncated", d.payload_truncated);
    readIfPresent(j, "payload_bytes", d.payload_bytes);
    readIfPresent(j, "ticket_id", d.ticket_id);
    readIfPresent(j, "trace_id", d.trace_id);
    d.failed_at = j["failed_at"];
    return d;
  });
}

}  // namespace ticketflow
