#include "ticketflow/domain/messages.hpp"

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
#include "ticketflow/schema/validator.hpp"

namespace ticketflow {
namespace detail {

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

}  // namespace detail

using detail::answerFrom;
using detail::classificationFrom;
using detail::parseAs;
using detail::parseErrorCode;
using detail::parseValidated;
using detail::routeFrom;
using detail::sourceFrom;
using detail::ticketFrom;
using detail::usageFrom;
using detail::writeAnswer;
using detail::writeClassification;
using detail::writeRoute;
using detail::writeSource;
using detail::writeTicket;
using detail::writeUsage;
using nlohmann::json;

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

}  // namespace ticketflow
