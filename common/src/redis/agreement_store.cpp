#include "ticketflow/redis/agreement_store.hpp"

#include <algorithm>
#include <cmath>

namespace ticketflow::redis {
namespace {

// KEYS: seen marker, counts hash, labels stream. ARGV: marker TTL s, "tier|category|", category
// agrees, needs_human agrees, label JSON, stream cap, whether it counts in the table. Once per marker.
const RedisScript& recordScript() {
  static const RedisScript s(R"lua(
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
local cell = ARGV[2]
if ARGV[7] == '1' then
  redis.call('HINCRBY', KEYS[2], cell .. 'compared', 1)
  if ARGV[3] == '1' then redis.call('HINCRBY', KEYS[2], cell .. 'category', 1) end
  if ARGV[4] == '1' then redis.call('HINCRBY', KEYS[2], cell .. 'needs_human', 1) end
  if ARGV[3] == '1' and ARGV[4] == '1' then redis.call('HINCRBY', KEYS[2], cell .. 'both', 1) end
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', 'label', ARGV[5])
return 1
)lua");
  return s;
}

constexpr std::int64_t kSeenTtlS = 30 * 86400;

}  // namespace

namespace {
// The Wilson score interval's bound on the side of `sign` (-1 lower, +1 upper), z for 95%.
double wilsonBound(const Proportion& p, double sign) {
  const double z = 1.959964, n = static_cast<double>(p.trials), e = p.estimate();
  const double centre = e + z * z / (2 * n), spread = z * std::sqrt(e * (1 - e) / n + z * z / (4 * n * n));
  return std::clamp((centre + sign * spread) / (1 + z * z / n), 0.0, 1.0);
}
}  // namespace

double Proportion::lower() const {
  return trials == 0 ? 0.0 : wilsonBound(*this, -1);
}
double Proportion::upper() const {
  return trials == 0 ? 1.0 : wilsonBound(*this, +1);
}

AgreementStore::AgreementStore(std::shared_ptr<RedisPool> pool, std::string key_prefix)
    : pool_(std::move(pool)), prefix_(std::move(key_prefix) + "shadow:") {}

Result<bool> AgreementStore::record(const ShadowComparison& c) {
  nlohmann::json label = c.label.toJson();
  label["category_agrees"] = c.category_agrees;
  label["needs_human_agrees"] = c.needs_human_agrees;
  label["final_answer"] = c.final_answer;
  const std::string seen =
      prefix_ + "seen:" + c.tenant + ":" + c.ticket_id + ":" + std::to_string(c.revision) + ":" + c.label.tier;
  auto reply = pool_->eval(
      recordScript(), {seen, prefix_ + "counts", prefix_ + "labels"},
      {std::to_string(kSeenTtlS), c.label.tier + "|" + c.label.category + "|", c.category_agrees ? "1" : "0",
       c.needs_human_agrees ? "1" : "0", label.dump(), std::to_string(kMaxLabels), c.final_answer ? "1" : "0"});
  if (auto status = replyStatus(reply, "shadow record"); !status) return status.error();
  return reply->integer == 1;
}

Status AgreementStore::countAnswered(const std::string& tier, const std::string& category) {
  return replyStatus(pool_->command({"HINCRBY", prefix_ + "counts", tier + "|" + category + "|answered", "1"}),
                     "shadow count");
}

Result<AgreementTable> AgreementStore::table() {
  auto reply = pool_->command({"HGETALL", prefix_ + "counts"});
  if (auto status = replyStatus(reply, "shadow counts"); !status) return status.error();
  AgreementTable table;
  for (std::size_t i = 0; i + 1 < reply->elements.size(); i += 2) {
    const std::string& field = reply->elements[i].str;
    const auto first = field.find('|'), last = field.rfind('|');
    if (first == std::string::npos || first == last) continue;
    AgreementCell& cell = table[field.substr(0, first)][field.substr(first + 1, last - first - 1)];
    const std::string name = field.substr(last + 1);
    std::int64_t value = 0;
    try {
      value = std::stoll(reply->elements[i + 1].str);
    } catch (const std::exception&) {
      continue;
    }
    if (name == "answered") cell.answered = value;
    if (name == "compared") cell.category.trials = cell.needs_human.trials = cell.both.trials = value;
    if (name == "category") cell.category.successes = value;
    if (name == "needs_human") cell.needs_human.successes = value;
    if (name == "both") cell.both.successes = value;
  }
  return table;
}

Result<std::vector<classify::AgreementLabel>> AgreementStore::labels(std::int64_t limit) {
  auto reply = pool_->command({"XREVRANGE", prefix_ + "labels", "+", "-", "COUNT", std::to_string(limit)});
  if (auto status = replyStatus(reply, "shadow labels"); !status) return status.error();
  std::vector<classify::AgreementLabel> out;
  for (auto it = reply->elements.rbegin(); it != reply->elements.rend(); ++it) {
    if (it->elements.size() != 2 || it->elements[1].elements.size() != 2) continue;
    auto j = nlohmann::json::parse(it->elements[1].elements[1].str, nullptr, false);
    if (auto label = classify::AgreementLabel::fromJson(j)) out.push_back(std::move(*label));
  }
  return out;
}

Status AgreementStore::reset() {
  if (auto st = replyStatus(pool_->command({"DEL", prefix_ + "counts", prefix_ + "labels"}), "shadow reset"); !st)
    return st;
  std::string cursor = "0";
  for (int round = 0; round < 100'000; ++round) {  // bounded: a scan ends long before
    auto page = pool_->command({"SCAN", cursor, "MATCH", prefix_ + "seen:*", "COUNT", "1000"});
    if (auto st = replyStatus(page, "shadow reset"); !st) return st;
    if (page->elements.size() != 2) return Error::internal("shadow reset: unexpected SCAN reply");
    std::vector<std::string> unlink = {"UNLINK"};
    for (const auto& key : page->elements[1].elements) unlink.push_back(key.str);
    if (unlink.size() > 1)
      if (auto st = replyStatus(pool_->command(unlink), "shadow reset"); !st) return st;
    cursor = page->elements[0].str;
    if (cursor == "0") break;
  }
  return {};
}

}  // namespace ticketflow::redis
