#include "ticketflow/domain/messages.hpp"

#include <algorithm>
#include <sstream>

#include <Poco/Base64Decoder.h>
#include <Poco/Base64Encoder.h>

#include "ticketflow/core/clock.hpp"
#include "ticketflow/core/json_fields.hpp"
#include "ticketflow/schema/validator.hpp"

namespace ticketflow {
namespace {

using nlohmann::json;

void putIfNotEmpty(json& obj, const char* key, const std::string& value) {
  if (!value.empty()) obj[key] = value;
}

// Parses and validates `bytes` against `schema`; a failure names the field and the reason.
Result<json> parseValidated(std::string_view bytes, const char* schema) {
  json doc = json::parse(bytes.begin(), bytes.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Error::malformed("not valid JSON");
  const auto errors = schema::SchemaRegistry::builtin().validate(schema, doc, 1);
  if (!errors.empty()) {
    const auto& e = errors.front();
    const std::string field = schema::pointerToFieldPath(e.path);
    return Error::schema(field.empty() ? e.reason : "field '" + field + "': " + e.reason);
  }
  return doc;
}

json sourceJson(const TicketSource& s) {
  json j = {{"system", s.system}};
  putIfNotEmpty(j, "ref", s.ref);
  return j;
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

json classificationJson(const Classification& c) {
  json j = {{"category", c.category},
            {"confidence", c.confidence},
            {"difficulty", difficultyName(c.difficulty)},
            {"difficulty_score", c.difficulty_score}};
  if (!c.probabilities.empty()) j["probabilities"] = c.probabilities;
  return j;
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

json usageJson(const TokenUsage& u) { return {{"input_tokens", u.input_tokens}, {"output_tokens", u.output_tokens}}; }

TokenUsage usageFrom(const json& j) { return {j.at("input_tokens"), j.at("output_tokens")}; }

CacheStatus parseCacheStatus(const std::string& s) {
  if (s == "exact") return CacheStatus::kExact;
  if (s == "semantic") return CacheStatus::kSemantic;
  if (s == "skipped") return CacheStatus::kSkipped;
  return CacheStatus::kMiss;
}

ErrorCode parseErrorCode(const std::string& s) {
  for (auto code : {ErrorCode::kInvalidArgument, ErrorCode::kMalformed, ErrorCode::kSchemaViolation, ErrorCode::kNotFound,
                    ErrorCode::kUnavailable, ErrorCode::kTimeout, ErrorCode::kRateLimited, ErrorCode::kBudgetExhausted,
                    ErrorCode::kIo, ErrorCode::kInternal}) {
    if (s == errorCodeName(code)) return code;
  }
  return ErrorCode::kInternal;
}

}  // namespace

const char* difficultyName(Difficulty d) {
  switch (d) {
    case Difficulty::kEasy: return "easy";
    case Difficulty::kMedium: return "medium";
    case Difficulty::kHard: return "hard";
  }
  return "medium";
}

std::optional<Difficulty> parseDifficulty(std::string_view s) {
  if (s == "easy") return Difficulty::kEasy;
  if (s == "medium") return Difficulty::kMedium;
  if (s == "hard") return Difficulty::kHard;
  return std::nullopt;
}

const char* cacheStatusName(CacheStatus s) {
  switch (s) {
    case CacheStatus::kMiss: return "miss";
    case CacheStatus::kExact: return "exact";
    case CacheStatus::kSemantic: return "semantic";
    case CacheStatus::kSkipped: return "skipped";
  }
  return "miss";
}

json toJson(const Ticket& t) {
  json j = {{"schema_version", 1}, {"id", t.id}, {"tenant", t.tenant}, {"body", t.body}, {"created_at", t.created_at}};
  if (t.revision != 0) j["revision"] = t.revision;
  if (t.source) j["source"] = sourceJson(*t.source);
  putIfNotEmpty(j, "subject", t.subject);
  if (t.requester) {
    json r = json::object();
    putIfNotEmpty(r, "id", t.requester->id);
    putIfNotEmpty(r, "name", t.requester->name);
    putIfNotEmpty(r, "email", t.requester->email);
    putIfNotEmpty(r, "department", t.requester->department);
    if (t.requester->vip) r["vip"] = true;
    j["requester"] = r;
  }
  putIfNotEmpty(j, "priority", t.priority);
  putIfNotEmpty(j, "language", t.language);
  if (!t.metadata.empty()) j["metadata"] = t.metadata;
  return j;
}

json toJson(const RoutedTicket& t) {
  json routing = {{"tier", t.tier}, {"rule", t.rule}};
  if (t.escalations) routing["escalations"] = t.escalations;
  routing["budget_state"] = t.budget_state;
  if (t.spent_micro_usd) routing["spent_micro_usd"] = t.spent_micro_usd;
  return {{"ticket", toJson(t.ticket)},
          {"trace_id", t.trace_id},
          {"received_at", t.received_at},
          {"classification", classificationJson(t.classification)},
          {"routing", routing}};
}

json toJson(const Answer& a) {
  json answer = {{"summary", a.summary},
                 {"reply", a.reply},
                 {"resolution_steps", a.resolution_steps},
                 {"needs_human", a.needs_human},
                 {"confidence", a.confidence}};
  putIfNotEmpty(answer, "category_check", a.category_check);
  putIfNotEmpty(answer, "needs_human_reason", a.needs_human_reason);
  return answer;
}

std::string toCacheJson(const CachedAnswer& cached) {
  return json{{"answer", toJson(cached.answer)}, {"simulated", cached.simulated}}.dump();
}

Result<CachedAnswer> parseCachedAnswer(std::string_view bytes) {
  const json doc = json::parse(bytes, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return Error::malformed("cached answer: not a JSON object");
  try {
    CachedAnswer cached;
    cached.answer = answerFrom(doc.at("answer"));
    readIfPresent(doc, "simulated", cached.simulated);
    return cached;
  } catch (const json::exception& e) {
    return Error::schema(std::string("cached answer: ") + e.what());
  }
}

json toJson(const TicketResult& r) {
  json cache = {{"status", cacheStatusName(r.cache.status)}};
  if (r.cache.similarity) cache["similarity"] = *r.cache.similarity;
  putIfNotEmpty(cache, "source_ticket_id", r.cache.source_ticket_id);
  if (r.cache.saved_micro_usd) cache["saved_micro_usd"] = r.cache.saved_micro_usd;
  const json answer = toJson(r.answer);
  json j = {{"ticket_id", r.ticket_id},
            {"tenant", r.tenant},
            {"revision", r.revision},
            {"trace_id", r.trace_id},
            {"classification", classificationJson(r.classification)},
            {"tier", r.tier},
            {"cache", cache},
            {"answer", answer},
            {"cost_micro_usd", r.cost_micro_usd},
            {"usage", usageJson(r.usage)},
            {"latency_ms", r.latency_ms},
            {"attempts", r.attempts},
            {"degraded", r.degraded},
            {"simulated", r.simulated},
            {"completed_at", r.completed_at}};
  if (r.source) j["source"] = sourceJson(*r.source);
  putIfNotEmpty(j, "model", r.model);
  putIfNotEmpty(j, "provider", r.provider);
  putIfNotEmpty(j, "degraded_reason", r.degraded_reason);
  return j;
}

TicketResult handOffResult(const RoutedTicket& routed, const std::string& reason, MicroUsd spent,
                           std::chrono::system_clock::time_point now) {
  TicketResult r;
  r.ticket_id = routed.ticket.id;
  r.tenant = routed.ticket.tenant;
  r.revision = routed.ticket.revision;
  r.source = routed.ticket.source;
  r.trace_id = routed.trace_id;
  r.classification = routed.classification;
  r.tier = routed.tier;
  r.answer.summary = "Not triaged by a model: " + utf8Prefix(reason, 1500);
  r.answer.needs_human = true;
  r.answer.needs_human_reason = utf8Prefix(reason, 2000);
  r.answer.confidence = 0;
  r.cost_micro_usd = spent;
  if (auto received = parseRfc3339(routed.received_at))
    r.latency_ms = std::max<std::int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(now - *received).count());
  r.completed_at = formatRfc3339(now);
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
  u.difficulty = r.classification.difficulty;
  u.confidence = r.classification.confidence;
  u.tier = r.tier;
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
  u.needs_human = r.answer.needs_human;
  u.needs_human_reason = r.answer.needs_human_reason;
  u.summary = r.answer.summary;
  u.reply = r.answer.reply;
  u.resolution_steps = r.answer.resolution_steps;
  u.simulated = r.simulated;
  u.updated_at = std::move(updated_at);
  return u;
}

json toJson(const TicketUpdate& u) {
  json j = {{"ticket_id", u.ticket_id},
            {"tenant", u.tenant},
            {"revision", u.revision},
            {"trace_id", u.trace_id},
            {"category", u.category},
            {"difficulty", difficultyName(u.difficulty)},
            {"confidence", u.confidence},
            {"tier", u.tier},
            {"cache", cacheStatusName(u.cache)},
            {"cost_micro_usd", u.cost_micro_usd},
            {"usage", usageJson(u.usage)},
            {"latency_ms", u.latency_ms},
            {"degraded", u.degraded},
            {"needs_human", u.needs_human},
            {"summary", u.summary},
            {"reply", u.reply},
            {"resolution_steps", u.resolution_steps},
            {"simulated", u.simulated},
            {"updated_at", u.updated_at}};
  if (u.source) j["source"] = sourceJson(*u.source);
  putIfNotEmpty(j, "model", u.model);
  putIfNotEmpty(j, "provider", u.provider);
  putIfNotEmpty(j, "degraded_reason", u.degraded_reason);
  putIfNotEmpty(j, "needs_human_reason", u.needs_human_reason);
  putIfNotEmpty(j, "cache_source_ticket_id", u.cache_source_ticket_id);
  if (u.cache_saved_micro_usd) j["cache_saved_micro_usd"] = u.cache_saved_micro_usd;
  return j;
}

json toJson(const DeadLetter& d) {
  const bool text = isValidUtf8(d.payload);
  json source = {{"topic", d.topic}, {"partition", d.partition}, {"offset", d.offset}};
  if (!d.key.empty()) source["key"] = isValidUtf8(d.key) ? d.key : base64Encode(d.key);
  json j = {{"stage", d.stage},
            {"error_class", errorCodeName(d.error_class)},
            {"error", d.error},
            {"attempts", d.attempts},
            {"source", source},
            {"payload", text ? d.payload : base64Encode(d.payload)},
            {"payload_encoding", text ? "utf-8" : "base64"},
            {"failed_at", d.failed_at}};
  putIfNotEmpty(j, "ticket_id", d.ticket_id);
  putIfNotEmpty(j, "trace_id", d.trace_id);
  return j;
}

Result<Ticket> parseTicket(std::string_view bytes) {
  auto doc = parseValidated(bytes, "ticket.schema.json");
  if (!doc) return doc.error();
  return ticketFrom(*doc);
}

Result<RoutedTicket> parseRoutedTicket(std::string_view bytes) {
  auto doc = parseValidated(bytes, "routed_ticket.schema.json");
  if (!doc) return doc.error();
  const json& j = *doc;
  RoutedTicket t;
  t.ticket = ticketFrom(j["ticket"]);
  t.trace_id = j["trace_id"];
  t.received_at = j["received_at"];
  t.classification = classificationFrom(j["classification"]);
  t.tier = j["routing"]["tier"];
  t.rule = j["routing"]["rule"];
  readIfPresent(j["routing"], "escalations", t.escalations);
  readIfPresent(j["routing"], "budget_state", t.budget_state);
  readIfPresent(j["routing"], "spent_micro_usd", t.spent_micro_usd);
  return t;
}

Result<TicketResult> parseTicketResult(std::string_view bytes) {
  auto doc = parseValidated(bytes, "result.schema.json");
  if (!doc) return doc.error();
  const json& j = *doc;
  TicketResult r;
  r.ticket_id = j["ticket_id"];
  r.tenant = j["tenant"];
  r.revision = j["revision"];
  if (j.contains("source")) r.source = sourceFrom(j["source"]);
  r.trace_id = j["trace_id"];
  r.classification = classificationFrom(j["classification"]);
  r.tier = j["tier"];
  readIfPresent(j, "model", r.model);
  readIfPresent(j, "provider", r.provider);
  const json& c = j["cache"];
  r.cache.status = parseCacheStatus(c["status"]);
  if (c.contains("similarity")) r.cache.similarity = c["similarity"].get<double>();
  readIfPresent(c, "source_ticket_id", r.cache.source_ticket_id);
  readIfPresent(c, "saved_micro_usd", r.cache.saved_micro_usd);
  r.answer = answerFrom(j["answer"]);
  r.cost_micro_usd = j["cost_micro_usd"];
  r.usage = usageFrom(j["usage"]);
  r.latency_ms = j["latency_ms"];
  readIfPresent(j, "attempts", r.attempts);
  r.degraded = j["degraded"];
  readIfPresent(j, "degraded_reason", r.degraded_reason);
  r.simulated = j["simulated"];
  r.completed_at = j["completed_at"];
  return r;
}

Result<TicketUpdate> parseTicketUpdate(std::string_view bytes) {
  auto doc = parseValidated(bytes, "ticket_update.schema.json");
  if (!doc) return doc.error();
  const json& j = *doc;
  TicketUpdate u;
  u.ticket_id = j["ticket_id"];
  u.tenant = j["tenant"];
  u.revision = j["revision"];
  if (j.contains("source")) u.source = sourceFrom(j["source"]);
  u.trace_id = j["trace_id"];
  u.category = j["category"];
  u.difficulty = parseDifficulty(j["difficulty"].get<std::string>()).value_or(Difficulty::kMedium);
  u.confidence = j["confidence"];
  u.tier = j["tier"];
  readIfPresent(j, "model", u.model);
  readIfPresent(j, "provider", u.provider);
  u.cache = parseCacheStatus(j["cache"]);
  readIfPresent(j, "cache_source_ticket_id", u.cache_source_ticket_id);
  readIfPresent(j, "cache_saved_micro_usd", u.cache_saved_micro_usd);
  u.cost_micro_usd = j["cost_micro_usd"];
  u.usage = usageFrom(j["usage"]);
  u.latency_ms = j["latency_ms"];
  u.degraded = j["degraded"];
  readIfPresent(j, "degraded_reason", u.degraded_reason);
  u.needs_human = j["needs_human"];
  readIfPresent(j, "needs_human_reason", u.needs_human_reason);
  u.summary = j["summary"];
  u.reply = j["reply"];
  u.resolution_steps = j["resolution_steps"].get<std::vector<std::string>>();
  u.simulated = j["simulated"];
  u.updated_at = j["updated_at"];
  return u;
}

Result<DeadLetter> parseDeadLetter(std::string_view bytes) {
  auto doc = parseValidated(bytes, "dead_letter.schema.json");
  if (!doc) return doc.error();
  const json& j = *doc;
  DeadLetter d;
  d.stage = j["stage"];
  d.error_class = parseErrorCode(j["error_class"]);
  d.error = j["error"];
  d.attempts = j["attempts"];
  d.topic = j["source"]["topic"];
  d.partition = j["source"]["partition"];
  d.offset = j["source"]["offset"];
  readIfPresent(j["source"], "key", d.key);
  const std::string payload = j["payload"];
  d.payload = j["payload_encoding"] == "base64" ? base64Decode(payload) : payload;
  readIfPresent(j, "ticket_id", d.ticket_id);
  readIfPresent(j, "trace_id", d.trace_id);
  d.failed_at = j["failed_at"];
  return d;
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

bool isValidUtf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (std::size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Reject overlong forms, surrogates and values past U+10FFFF.
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += len;
  }
  return true;
}

std::string base64Encode(std::string_view bytes) {
  std::ostringstream out;
  Poco::Base64Encoder encoder(out);
  encoder.rdbuf()->setLineLength(0);
  encoder.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  encoder.close();
  return out.str();
}

std::string base64Decode(std::string_view text) {
  std::istringstream in{std::string(text)};
  Poco::Base64Decoder decoder(in);
  return std::string(std::istreambuf_iterator<char>(decoder), std::istreambuf_iterator<char>());
}

}  // namespace ticketflow
