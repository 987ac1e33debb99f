#include "ticketflow/domain/messages.hpp"

#include <algorithm>
#include <cctype>
#include <sstream>

#include <Poco/Base64Decoder.h>
#include <Poco/Base64Encoder.h>
#include <Poco/Exception.h>

#include "ticketflow/core/clock.hpp"
#include "ticketflow/core/json_fields.hpp"
#include "ticketflow/core/json_parse.hpp"
#include "ticketflow/core/json_writer.hpp"
#include "ticketflow/core/utf8.hpp"
#include "ticketflow/schema/validator.hpp"

namespace ticketflow {
namespace {

using nlohmann::json;

// Parses and validates `bytes` against `schema`; a failure names the field and the reason.
Result<json> parseValidated(std::string_view bytes, const char* schema) {
  auto parsed = parseJsonText(bytes);
  if (!parsed) return Error::malformed("not valid JSON");
  const auto errors = schema::SchemaRegistry::builtin().validate(schema, *parsed, 1, schema::Disclosure::kSchemaOnly);
  if (!errors.empty()) {
    const auto& e = errors.front();
    const std::string field = schema::pointerToFieldPath(e.path);
    return Error::schema(field.empty() ? e.reason : "field '" + field + "': " + e.reason);
  }
  return std::move(*parsed);
}

// Parses, validates and builds a T. What the schema cannot bound in a JSON number (an integer
// past int64) throws while building; it is a schema violation naming the field, like the rest.
template <typename T, typename Build>
Result<T> parseAs(std::string_view bytes, const char* schema, Build build) {
  auto doc = parseValidated(bytes, schema);
  if (!doc) return doc.error();
  try {
    return build(*doc);
  } catch (const std::out_of_range& e) {
    return Error::schema(e.what());
  } catch (const std::invalid_argument& e) {
    return Error::schema(e.what());
  } catch (const json::exception&) {
    return Error::schema("a field has an unexpected type or value");
  }
}

void writeSource(JsonWriter& w, const TicketSource& s) {
  w.beginObject().fieldIfNotEmpty("ref", s.ref).field("system", s.system).endObject();
}

TicketSource sourceFrom(const json& j) {
  TicketSource s;
  s.system = j.at("system").get<std::string>();
  readIfPresent(j, "ref", s.ref);
  return s;
}

Ticket ticketFrom(const json& j) {
  Ticket t;
  t.id = j.at("id");
  t.tenant = j.at("tenant");
  readIfPresent(j, "revision", t.revision);
  if (j.contains("source")) t.source = sourceFrom(j["source"]);
  readIfPresent(j, "subject", t.subject);
  t.body = j.at("body");
  if (auto it = j.find("requester"); it != j.end()) {
    Requester r;
    readIfPresent(*it, "id", r.id);
    readIfPresent(*it, "name", r.name);
    readIfPresent(*it, "email", r.email);
    readIfPresent(*it, "department", r.department);
    readIfPresent(*it, "vip", r.vip);
    t.requester = r;
  }
  t.created_at = j.at("created_at");
  readIfPresent(j, "priority", t.priority);
  readIfPresent(j, "language", t.language);
  if (auto it = j.find("metadata"); it != j.end()) t.metadata = *it;
  return t;
}

void writeClassification(JsonWriter& w, const Classification& c) {
  w.beginObject()
      .field("category", c.category)
      .field("confidence", c.confidence)
      .field("difficulty", difficultyName(c.difficulty))
      .field("difficulty_score", c.difficulty_score);
  if (!c.probabilities.empty()) {
    w.key("probabilities").beginObject();
    for (const auto& [label, p] : c.probabilities) w.field(label, p);
    w.endObject();
  }
  w.endObject();
}

Classification classificationFrom(const json& j) {
  Classification c;
  c.category = j.at("category");
  c.confidence = j.at("confidence");
  c.difficulty = parseDifficulty(j.at("difficulty").get<std::string>()).value_or(Difficulty::kMedium);
  c.difficulty_score = j.at("difficulty_score");
  readIfPresent(j, "probabilities", c.probabilities);
  return c;
}

Answer answerFrom(const json& a) {
  Answer answer;
  answer.summary = a.at("summary");
  readIfPresent(a, "category_check", answer.category_check);
  answer.reply = a.at("reply");
  answer.resolution_steps = a.at("resolution_steps").get<std::vector<std::string>>();
  answer.needs_human = a.at("needs_human");
  readIfPresent(a, "needs_human_reason", answer.needs_human_reason);
  answer.confidence = a.at("confidence");
  return answer;
}

void writeRoute(JsonWriter& w, const Route& r) {
  w.beginObject();
  if (!r.moves.empty()) {
    w.key("moves").beginArray();
    for (const auto& m : r.moves)
      w.beginObject().field("from", m.from).field("reason", m.reason).field("to", m.to).endObject();
    w.endArray();
  }
  w.field("routed_tier", r.routed_tier);
  if (r.thresholds_version) w.field("thresholds_version", r.thresholds_version);
  if (r.measured_for_shares) w.field("measured_for_shares", true);
  w.endObject();
}

Route routeFrom(const json& j) {
  Route r;
  r.routed_tier = j.at("routed_tier");
  if (j.contains("moves"))
    for (const auto& m : j["moves"]) r.moves.push_back({m.at("from"), m.at("to"), m.at("reason")});
  readIfPresent(j, "thresholds_version", r.thresholds_version);
  readIfPresent(j, "measured_for_shares", r.measured_for_shares);
  return r;
}

void writeUsage(JsonWriter& w, const TokenUsage& u) {
  w.beginObject().field("input_tokens", u.input_tokens).field("output_tokens", u.output_tokens).endObject();
}

void writeAnswer(JsonWriter& w, const Answer& a) {
  w.beginObject()
      .fieldIfNotEmpty("category_check", a.category_check)
      .field("confidence", a.confidence)
      .field("needs_human", a.needs_human)
      .fieldIfNotEmpty("needs_human_reason", a.needs_human_reason)
      .field("reply", a.reply)
      .field("resolution_steps", a.resolution_steps)
      .field("summary", a.summary)
      .endObject();
}

void writeTicket(JsonWriter& w, const Ticket& t) {
  w.beginObject().field("body", t.body).field("created_at", t.created_at).field("id", t.id);
  w.fieldIfNotEmpty("language", t.language);
  if (!t.metadata.empty()) w.field("metadata", t.metadata);
  w.fieldIfNotEmpty("priority", t.priority);
  if (t.requester) {
    const Requester& r = *t.requester;
    w.key("requester").beginObject();
    w.fieldIfNotEmpty("department", r.department).fieldIfNotEmpty("email", r.email).fieldIfNotEmpty("id", r.id);
    w.fieldIfNotEmpty("name", r.name);
    if (r.vip) w.field("vip", true);
    w.endObject();
  }
  if (t.revision != 0) w.field("revision", t.revision);
  w.field("schema_version", 1);
  if (t.source) writeSource(w.key("source"), *t.source);
  w.fieldIfNotEmpty("subject", t.subject).field("tenant", t.tenant).endObject();
}

TokenUsage usageFrom(const json& j) {
  return {j.at("input_tokens"), j.at("output_tokens")};
}

ErrorCode parseErrorCode(const std::string& s) {
  for (auto code : {ErrorCode::kInvalidArgument, ErrorCode::kMalformed, ErrorCode::kSchemaViolation,
                    ErrorCode::kNotFound, ErrorCode::kUnavailable, ErrorCode::kTimeout, ErrorCode::kRateLimited,
                    ErrorCode::kBudgetExhausted, ErrorCode::kIo, ErrorCode::kInternal}) {
    if (s == errorCodeName(code)) return code;
  }
  return ErrorCode::kInternal;
}

}  // namespace

const char* difficultyName(Difficulty d) {
  switch (d) {
    case Difficulty::kEasy:
      return "easy";
    case Difficulty::kMedium:
      return "medium";
    case Difficulty::kHard:
      return "hard";
  }
  return "medium";
}

const char* budgetStateName(BudgetState s) {
  switch (s) {
    case BudgetState::kOk:
      return "ok";
    case BudgetState::kDowngraded:
      return "downgraded";
    case BudgetState::kDeferred:
      return "deferred";
  }
  return "ok";
}

std::optional<BudgetState> parseBudgetState(std::string_view s) {
  if (s == "ok") return BudgetState::kOk;
  if (s == "downgraded") return BudgetState::kDowngraded;
  if (s == "deferred") return BudgetState::kDeferred;
  return std::nullopt;
}

std::optional<Difficulty> parseDifficulty(std::string_view s) {
  if (s == "easy") return Difficulty::kEasy;
  if (s == "medium") return Difficulty::kMedium;
  if (s == "hard") return Difficulty::kHard;
  return std::nullopt;
}

CacheStatus parseCacheStatus(std::string_view s) {
  if (s == "exact") return CacheStatus::kExact;
  if (s == "semantic") return CacheStatus::kSemantic;
  if (s == "skipped") return CacheStatus::kSkipped;
  if (s == "coalesced") return CacheStatus::kCoalesced;
  return CacheStatus::kMiss;
}

void Route::move(const std::string& from, const std::string& to, const std::string& reason) {
  if (routed_tier.empty()) routed_tier = from;
  if (moves.size() < kMaxMoves) moves.push_back({from, to, reason});
}

const char* cacheStatusName(CacheStatus s) {
  switch (s) {
    case CacheStatus::kMiss:
      return "miss";
    case CacheStatus::kExact:
      return "exact";
    case CacheStatus::kSemantic:
      return "semantic";
    case CacheStatus::kSkipped:
      return "skipped";
    case CacheStatus::kCoalesced:
      return "coalesced";
  }
  return "miss";
}

// Keys are written in sorted order, as nlohmann's documents print them, so a message's bytes do
// not depend on which of the two wrote it.
bool sameCategory(std::string_view a, std::string_view b) {
  auto trim = [](std::string_view v) {
    while (!v.empty() && std::isspace(static_cast<unsigned char>(v.front()))) v.remove_prefix(1);
    while (!v.empty() && std::isspace(static_cast<unsigned char>(v.back()))) v.remove_suffix(1);
    return v;
  };
  a = trim(a);
  b = trim(b);
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string toJson(const Ticket& t) {
  JsonWriter w;
  writeTicket(w, t);
  return w.take();
}

void writeRoutedTicket(JsonWriter& w, const RoutedTicket& t) {
  w.beginObject();
  writeClassification(w.key("classification"), t.classification);
  w.field("received_at", t.received_at);
  w.key("routing").beginObject().field("budget_state", budgetStateName(t.budget_state));
  if (t.escalations) w.field("escalations", t.escalations);
  if (!t.route.routed_tier.empty()) writeRoute(w.key("route"), t.route);
  w.field("rule", t.rule);
  if (t.spent_micro_usd) w.field("spent_micro_usd", t.spent_micro_usd);
  w.field("tier", t.tier);
  if (t.tier_visits) w.field("tier_visits", t.tier_visits);
  w.endObject();
  writeTicket(w.key("ticket"), t.ticket);
  w.field("trace_id", t.trace_id).endObject();
}

std::string toJson(const RoutedTicket& t) {
  JsonWriter w;
  writeRoutedTicket(w, t);
  return w.take();
}

std::string toJson(const ShadowRequest& s) {
  JsonWriter w;
  w.beginObject();
  w.key("answer").beginObject();
  if (s.agreement) w.field("agreement", *s.agreement);
  w.field("category", s.answer_category).field("confidence", s.confidence);
  if (s.escalated) w.field("escalated", true);
  w.key("features").value(s.features.toJson());
  w.field("model", s.model).field("needs_human", s.needs_human).field("tier", s.tier).endObject();
  writeRoutedTicket(w.key("routed"), s.routed);
  w.endObject();
  return w.take();
}

std::string toJson(const Feedback& f) {
  JsonWriter w;
  w.beginObject();
  if (f.corrected_assignment_group) w.field("corrected_assignment_group", *f.corrected_assignment_group);
  if (f.corrected_category) w.field("corrected_category", *f.corrected_category);
  if (f.reopened) w.field("reopened", *f.reopened);
  if (f.resolved_by_reply) w.field("resolved_by_reply", *f.resolved_by_reply);
  w.field("revision", f.revision);
  if (!f.submitted_at.empty()) w.field("submitted_at", f.submitted_at);
  w.field("tenant", f.tenant).field("ticket_id", f.ticket_id).endObject();
  return w.take();
}

std::string toJson(const Answer& a) {
  JsonWriter w;
  writeAnswer(w, a);
  return w.take();
}

std::string toCacheJson(const CachedAnswer& cached) {
  JsonWriter w;
  w.beginObject();
  writeAnswer(w.key("answer"), cached.answer);
  w.field("simulated", cached.simulated).endObject();
  return w.take();
}

Result<CachedAnswer> parseCachedAnswer(std::string_view bytes) {
  const json doc = parseJsonText(bytes).value_or(json());
  if (!doc.is_object()) return Error::malformed("cached answer: not a JSON object");
  try {
    CachedAnswer cached;
    cached.answer = answerFrom(doc.at("answer"));
    readIfPresent(doc, "simulated", cached.simulated);
    return cached;
  } catch (const json::exception& e) {
    return Error::schema(std::string("cached answer: ") + e.what());
  }
}

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

Result<Ticket> parseTicket(std::string_view bytes) {
  return parseAs<Ticket>(bytes, "ticket.schema.json", [](const json& j) { return ticketFrom(j); });
}

RoutedTicket routedTicketFrom(const json& j) {
  RoutedTicket t;
  t.ticket = ticketFrom(j["ticket"]);
  t.trace_id = j["trace_id"];
  t.received_at = j["received_at"];
  t.classification = classificationFrom(j["classification"]);
  t.tier = j["routing"]["tier"];
  t.rule = j["routing"]["rule"];
  readIfPresent(j["routing"], "escalations", t.escalations);
  readIfPresent(j["routing"], "tier_visits", t.tier_visits);
  if (j["routing"].contains("budget_state")) {
    const std::string state = j["routing"]["budget_state"];
    auto parsed = parseBudgetState(state);
    if (!parsed) throw std::invalid_argument("field 'budget_state': unknown state '" + state + "'");
    t.budget_state = *parsed;
  }
  readIfPresent(j["routing"], "spent_micro_usd", t.spent_micro_usd);
  if (j["routing"].contains("route")) t.route = routeFrom(j["routing"]["route"]);
  return t;
}

Result<RoutedTicket> parseRoutedTicket(std::string_view bytes) {
  return parseAs<RoutedTicket>(bytes, "routed_ticket.schema.json", [](const json& j) { return routedTicketFrom(j); });
}

Result<Feedback> parseFeedback(std::string_view bytes) {
  return parseAs<Feedback>(bytes, "feedback.schema.json", [](const json& j) {
    Feedback f;
    f.tenant = j["tenant"];
    f.ticket_id = j["ticket_id"];
    f.revision = j["revision"];
    if (j.contains("corrected_category")) f.corrected_category = j["corrected_category"].get<std::string>();
    if (j.contains("corrected_assignment_group"))
      f.corrected_assignment_group = j["corrected_assignment_group"].get<std::string>();
    if (j.contains("resolved_by_reply")) f.resolved_by_reply = j["resolved_by_reply"].get<bool>();
    if (j.contains("reopened")) f.reopened = j["reopened"].get<bool>();
    readIfPresent(j, "submitted_at", f.submitted_at);
    return f;
  });
}

Result<ShadowRequest> parseShadowRequest(std::string_view bytes) {
  return parseAs<ShadowRequest>(bytes, "shadow_request.schema.json", [](const json& j) {
    ShadowRequest s;
    s.routed = routedTicketFrom(j["routed"]);
    const json& a = j["answer"];
    s.tier = a["tier"];
    s.model = a["model"];
    s.answer_category = a["category"];
    s.needs_human = a["needs_human"];
    s.confidence = a["confidence"];
    if (a.contains("agreement")) s.agreement = a["agreement"].get<double>();
    readIfPresent(a, "escalated", s.escalated);
    auto features = classify::AnswerFeatures::fromJson(a["features"]);
    if (!features) throw std::invalid_argument(features.error().message);
    s.features = *features;
    return s;
  });
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

std::string utf8Prefix(std::string_view s, std::size_t max_code_points) {
  std::size_t i = 0, points = 0;
  while (i < s.size() && points < max_code_points) {
    std::size_t next = i + 1;
    while (next < s.size() && (static_cast<unsigned char>(s[next]) & 0xC0) == 0x80) ++next;  // continuation bytes
    i = next;
    ++points;
  }
  return std::string(s.substr(0, i));
}

std::string base64Encode(std::string_view bytes) {
  std::ostringstream out;
  Poco::Base64Encoder encoder(out);
  encoder.rdbuf()->setLineLength(0);
  encoder.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  encoder.close();
  return out.str();
}

std::optional<std::string> base64Decode(std::string_view text) {
  std::istringstream in{std::string(text)};
  Poco::Base64Decoder decoder(in);
  try {
    return std::string(std::istreambuf_iterator<char>(decoder), std::istreambuf_iterator<char>());
  } catch (const Poco::DataFormatException&) {
    return std::nullopt;
  }
}

}  // namespace ticketflow
