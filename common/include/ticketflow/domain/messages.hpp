#pragma once
// The messages that flow between roles, as C++ value types. Each mirrors a schema in schemas/;
// parse*() validates against the schema before building the value, and toJson() output always
// validates (tests check both directions against the schemas and against ajv).

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "ticketflow/classify/escalation_model.hpp"
#include "ticketflow/core/money.hpp"
#include "ticketflow/core/result.hpp"
#include "ticketflow/core/utf8.hpp"

namespace ticketflow {

enum class Difficulty { kEasy, kMedium, kHard };
const char* difficultyName(Difficulty d);
std::optional<Difficulty> parseDifficulty(std::string_view s);

// Where budget caps have left a routed ticket: ok, downgraded (a cap sent it to a cheaper tier),
// deferred (parked until its cap's period ends).
enum class BudgetState { kOk, kDowngraded, kDeferred };
const char* budgetStateName(BudgetState s);
std::optional<BudgetState> parseBudgetState(std::string_view s);

// kCoalesced: answered from the cache after waiting for a near-duplicate's answer still being made.
enum class CacheStatus { kMiss, kExact, kSemantic, kSkipped, kCoalesced };
const char* cacheStatusName(CacheStatus s);
CacheStatus parseCacheStatus(std::string_view s);  // kMiss for anything unknown

// Whether two category names are the same category (a model may write "hardware" for "Hardware"):
// ASCII case and surrounding white space ignored.
bool sameCategory(std::string_view a, std::string_view b);

struct TicketSource {
  std::string system;  // email, web, jira, servicenow, ...
  std::string ref;     // key in the source system
};

struct Requester {
  std::string id, name, email, department;
  bool vip = false;
};

// Inbound ticket v1 (schemas/ticket.schema.json).
struct Ticket {
  std::string id;
  std::string tenant;
  std::int64_t revision = 0;
  std::optional<TicketSource> source;
  std::string subject;
  std::string body;
  std::optional<Requester> requester;
  std::string created_at;
  std::string priority;  // empty when not stated
  std::string language;
  nlohmann::json metadata = nlohmann::json::object();

  // Subject and body as one text, for the classifier and the cache.
  std::string text() const { return subject.empty() ? body : subject + "\n" + body; }
};

struct Classification {
  std::string category;
  double confidence = 0;
  Difficulty difficulty = Difficulty::kMedium;
  double difficulty_score = 0;
  std::map<std::string, double> probabilities;
};

// Where intake routed a ticket and its moves between tiers after that (common.schema.json#route).
struct RouteMove {
  std::string from, to;
  std::string reason;  // low_confidence, verifier, quality_floor, unusable_answer, budget_downgrade, share_target
};
struct Route {
  std::string routed_tier;  // "" in messages from before routes were recorded
  std::vector<RouteMove> moves;
  // routing.targets: the version of the difficulty thresholds in force when the ticket reached
  // its first tier (redis/route_shares.hpp); its answer counts only in a window of that version.
  std::int64_t thresholds_version = 0;
  bool measured_for_shares = false;  // in that version's cohort: its final tier is counted
  static constexpr std::size_t kMaxMoves = 16;
  // Appends a move (the first kMaxMoves only: a ticket bounces at most a few times). A route from
  // an older message starts at the move's `from`.
  void move(const std::string& from, const std::string& to, const std::string& reason);
};

// schemas/routed_ticket.schema.json
struct RoutedTicket {
  Ticket ticket;
  std::string trace_id;
  std::string received_at;
  Classification classification;
  std::string tier;
  std::string rule;
  int escalations = 0;
  BudgetState budget_state = BudgetState::kOk;
  MicroUsd spent_micro_usd = 0;  // spent on this ticket by the tiers it passed before this one
  // Tiers the ticket was at before this one (escalations and budget downgrades): the tier's
  // ledger ids carry it, so a second visit to a tier is charged as the new requests it sends.
  int tier_visits = 0;
  Route route = {};
};

// schemas/shadow_request.schema.json: a ticket a tier below the reference tier answered, to be
// answered again by the reference tier (shadow evaluation), with what the tier answered.
struct ShadowRequest {
  RoutedTicket routed;  // as the answering tier had it
  std::string tier, model;
  std::string answer_category;  // the answer's category_check
  bool needs_human = false;
  double confidence = 0;
  std::optional<double> agreement;  // the verifier's estimate when the tier used one
  classify::AnswerFeatures features;
  // The verifier sent the ticket up: the comparison trains the verifier but is no final answer.
  bool escalated = false;
};

// Headers of a routed ticket parked on kafka.topics.deferred by a budget cap (RFC 3339 times).
inline constexpr const char* kParkedAtHeader = "parked-at";
inline constexpr const char* kParkedUntilHeader = "parked-until";  // due again then (the cap's period ends)
inline constexpr const char* kParkedReasonHeader = "parked-reason";

struct CacheOutcome {
  CacheStatus status = CacheStatus::kMiss;
  std::optional<double> similarity;
  std::string source_ticket_id;
  MicroUsd saved_micro_usd = 0;
};

struct Answer {
  std::string summary;
  std::string category_check;
  std::string reply;
  std::vector<std::string> resolution_steps;
  bool needs_human = false;
  std::string needs_human_reason;
  double confidence = 0;
};

// The category an answer gives: its category_check, or (a model may leave it out when it agrees)
// the classifier's.
inline const std::string& answerCategory(const Answer& answer, const Classification& classification) {
  return answer.category_check.empty() ? classification.category : answer.category_check;
}

struct TokenUsage {
  std::int64_t input_tokens = 0;
  std::int64_t output_tokens = 0;
};

// schemas/result.schema.json
struct TicketResult {
  std::string ticket_id;
  std::string tenant;
  std::int64_t revision = 0;
  std::optional<TicketSource> source;
  std::string trace_id;
  Classification classification;
  std::string tier;
  Route route;
  std::string model;     // empty for cache hits and hand-offs
  std::string provider;  // empty for cache hits and hand-offs
  CacheOutcome cache;
  Answer answer;
  MicroUsd cost_micro_usd = 0;
  TokenUsage usage;
  std::int64_t latency_ms = 0;
  int attempts = 0;
  bool degraded = false;
  std::string degraded_reason;
  std::int64_t ticket_chars_cut = 0;  // body characters the model did not see (models[].max_ticket_tokens)
  bool simulated = false;
  std::string completed_at;
};

// A result for `routed`, with what every result carries: the ticket's ids, tenant, revision,
// source, trace id, classification, tier and route, the latency from intake's receipt to `now`,
// and `now` as its completion. The caller adds the answer, the cost and the rest.
TicketResult resultFor(const RoutedTicket& routed, std::chrono::system_clock::time_point now);

// The result of a ticket no model answered: handed to humans with `reason` (a budget cap), its
// cost what was spent on it so far.
TicketResult handOffResult(const RoutedTicket& routed, const std::string& reason, MicroUsd spent,
                           std::chrono::system_clock::time_point now);

// schemas/ticket_update.schema.json
struct TicketUpdate {
  std::string ticket_id;
  std::string tenant;
  std::int64_t revision = 0;
  std::optional<TicketSource> source;
  std::string trace_id;
  std::string category;
  std::string answer_category;  // the category the answering model named, when it named one
  Difficulty difficulty = Difficulty::kMedium;
  double confidence = 0;
  std::string tier;
  Route route;
  std::string model;
  std::string provider;
  CacheStatus cache = CacheStatus::kMiss;
  std::string cache_source_ticket_id;  // cache hits
  MicroUsd cache_saved_micro_usd = 0;  // cache hits
  MicroUsd cost_micro_usd = 0;
  TokenUsage usage;
  std::int64_t latency_ms = 0;
  bool degraded = false;
  std::string degraded_reason;
  std::int64_t ticket_chars_cut = 0;  // as in TicketResult
  bool needs_human = false;
  std::string needs_human_reason;
  std::string summary;
  std::string reply;
  std::vector<std::string> resolution_steps;
  bool simulated = false;
  std::string updated_at;

  // The update a result becomes, stamped at `updated_at`.
  static TicketUpdate fromResult(const TicketResult& result, std::string updated_at);
};

// schemas/dead_letter.schema.json
struct DeadLetter {
  std::string stage;
  ErrorCode error_class = ErrorCode::kInternal;
  std::string error;
  int attempts = 0;
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::string key;
  std::string payload;  // the original bytes, or their start when payload_truncated
  bool payload_truncated = false;
  std::int64_t payload_bytes = 0;  // the original's size, when truncated
  std::string ticket_id;
  std::string trace_id;
  std::string failed_at;
};

// schemas/feedback.schema.json: what the helpdesk learned about a triaged ticket revision.
struct Feedback {
  std::string tenant, ticket_id;
  std::int64_t revision = 1;
  std::optional<std::string> corrected_category, corrected_assignment_group;
  std::optional<bool> resolved_by_reply, reopened;
  std::string submitted_at;  // "" when not given
};

// Each message's JSON text (core/json_writer.hpp writes it; no document is built).
std::string toJson(const Ticket& t);
std::string toJson(const RoutedTicket& t);
std::string toJson(const ShadowRequest& s);
std::string toJson(const Feedback& f);
std::string toJson(const Answer& a);
std::string toJson(const TicketResult& r);
std::string toJson(const TicketUpdate& u);
// The payload is carried as text when it is valid UTF-8, else base64.
std::string toJson(const DeadLetter& d);
// Keeps at most `max_bytes` of the letter's payload (cut at a character boundary when it is text)
// and its key, marking it truncated; what a dead letter too large for its topic falls back to.
void truncatePayload(DeadLetter& d, std::size_t max_bytes);

// Each parse validates the bytes against the schema first; the error names the field.
Result<Ticket> parseTicket(std::string_view bytes);
Result<RoutedTicket> parseRoutedTicket(std::string_view bytes);
Result<ShadowRequest> parseShadowRequest(std::string_view bytes);
Result<Feedback> parseFeedback(std::string_view bytes);
Result<TicketResult> parseTicketResult(std::string_view bytes);
Result<TicketUpdate> parseTicketUpdate(std::string_view bytes);
Result<DeadLetter> parseDeadLetter(std::string_view bytes);
// What the semantic cache keeps of a result to answer a near-duplicate ticket.
struct CachedAnswer {
  Answer answer;
  bool simulated = false;  // the provider simulator wrote it
};
std::string toCacheJson(const CachedAnswer& cached);
Result<CachedAnswer> parseCachedAnswer(std::string_view bytes);

}  // namespace ticketflow
