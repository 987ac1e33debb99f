#include "ticketflow/redis/feedback_store.hpp"

#include "ticketflow/core/crypto.hpp"

namespace ticketflow::redis {
namespace {

// KEYS: seen marker, escalation stream, category stream. ARGV: marker TTL s, escalation label JSON
// ("" for none), category example JSON ("" for none), stream cap. Once per marker.
const RedisScript& recordScript() {
  static const RedisScript s(R"lua(
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
if ARGV[2] ~= '' then redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'label', ARGV[2]) end
if ARGV[3] ~= '' then redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'label', ARGV[3]) end
return 1
)lua");
  return s;
}

// The newest `limit` entries' "label" JSON, oldest first.
Result<std::vector<nlohmann::json>> readStream(RedisPool& pool, const std::string& key, std::int64_t limit) {
  auto reply = pool.command({"XREVRANGE", key, "+", "-", "COUNT", std::to_string(limit)});
  if (auto status = replyStatus(reply, "feedback labels"); !status) return status.error();
  std::vector<nlohmann::json> out;
  for (auto it = reply->elements.rbegin(); it != reply->elements.rend(); ++it) {
    if (it->elements.size() != 2 || it->elements[1].elements.size() != 2) continue;
    auto j = nlohmann::json::parse(it->elements[1].elements[1].str, nullptr, false);
    if (!j.is_discarded()) out.push_back(std::move(j));
  }
  return out;
}

}  // namespace

nlohmann::json AnswerRecord::toJson() const {
  nlohmann::json j = {{"tier", tier},
                      {"category", category},
                      {"answer_category", answer_category},
                      {"needs_human", needs_human},
                      {"features", features.toJson()}};
  if (!text.empty()) j["text"] = text;
  return j;
}

Result<AnswerRecord> AnswerRecord::fromJson(const nlohmann::json& j) {
  try {
    AnswerRecord a;
    a.tier = j.at("tier").get<std::string>();
    a.category = j.at("category").get<std::string>();
    a.answer_category = j.at("answer_category").get<std::string>();
    a.needs_human = j.at("needs_human").get<bool>();
    auto features = classify::AnswerFeatures::fromJson(j.at("features"));
    if (!features) return features.error();
    a.features = *features;
    if (j.contains("text")) a.text = j["text"].get<std::string>();
    return a;
  } catch (const std::exception& e) {
    return Error::invalidArgument(std::string("answer record: ") + e.what());
  }
}

FeedbackLabels labelsFrom(const Feedback& feedback, const AnswerRecord& answer) {
  FeedbackLabels out;
  std::optional<bool> right;
  if (feedback.corrected_category) {
    right = *feedback.corrected_category == answer.answer_category;
    if (!answer.text.empty()) out.category = CategoryExample{answer.text, *feedback.corrected_category};
  } else if (feedback.reopened.value_or(false)) {
    right = false;
  } else if (feedback.resolved_by_reply) {
    right = *feedback.resolved_by_reply;
  }
  if (right) out.escalation = classify::AgreementLabel{answer.tier, answer.category, answer.features, *right};
  return out;
}

FeedbackStore::FeedbackStore(std::shared_ptr<RedisPool> pool, std::string key_prefix, std::chrono::seconds retention)
    : pool_(std::move(pool)), prefix_(std::move(key_prefix) + "feedback:"), retention_(retention) {}

Status FeedbackStore::remember(const std::string& tenant, const std::string& ticket_id, std::int64_t revision,
                               const AnswerRecord& answer) {
  return replyStatus(
      pool_->command({"SET", prefix_ + "answer:" + tenant + ":" + ticket_id + ":" + std::to_string(revision),
                      answer.toJson().dump(), "EX", std::to_string(retention_.count())}),
      "feedback remember");
}

Result<std::optional<AnswerRecord>> FeedbackStore::answer(const std::string& tenant, const std::string& ticket_id,
                                                          std::int64_t revision) {
  auto reply = pool_->command({"GET", prefix_ + "answer:" + tenant + ":" + ticket_id + ":" + std::to_string(revision)});
  if (auto status = replyStatus(reply, "feedback answer"); !status) return status.error();
  if (reply->type != Reply::Type::kString) return std::optional<AnswerRecord>{};
  auto j = nlohmann::json::parse(reply->str, nullptr, false);
  if (j.is_discarded()) return Error::internal("feedback answer: stored record is not JSON");
  auto record = AnswerRecord::fromJson(j);
  if (!record) return record.error();
  return std::optional<AnswerRecord>(std::move(*record));
}

Result<bool> FeedbackStore::record(const Feedback& feedback, const FeedbackLabels& labels) {
  const std::string seen = prefix_ + "seen:" + feedback.tenant + ":" + feedback.ticket_id + ":" +
                           std::to_string(feedback.revision) + ":" + sha256Hex(toJson(feedback)).substr(0, 16);
  const std::string escalation = labels.escalation ? labels.escalation->toJson().dump() : "";
  const std::string category =
      labels.category ? nlohmann::json{{"text", labels.category->text}, {"category", labels.category->category}}.dump()
                      : "";
  auto reply = pool_->eval(recordScript(), {seen, prefix_ + "labels", prefix_ + "texts"},
                           {std::to_string(retention_.count()), escalation, category, std::to_string(kMaxLabels)});
  if (auto status = replyStatus(reply, "feedback record"); !status) return status.error();
  return reply->integer == 1;
}

Result<std::vector<classify::AgreementLabel>> FeedbackStore::escalationLabels(std::int64_t limit) {
  auto entries = readStream(*pool_, prefix_ + "labels", limit);
  if (!entries) return entries.error();
  std::vector<classify::AgreementLabel> out;
  for (const auto& j : *entries)
    if (auto label = classify::AgreementLabel::fromJson(j)) out.push_back(std::move(*label));
  return out;
}

Result<std::vector<CategoryExample>> FeedbackStore::categoryExamples(std::int64_t limit) {
  auto entries = readStream(*pool_, prefix_ + "texts", limit);
  if (!entries) return entries.error();
  std::vector<CategoryExample> out;
  for (const auto& j : *entries)
    if (j.contains("text") && j.contains("category") && j["text"].is_string() && j["category"].is_string())
      out.push_back({j["text"].get<std::string>(), j["category"].get<std::string>()});
  return out;
}

}  // namespace ticketflow::redis
