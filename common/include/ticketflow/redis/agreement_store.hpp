#pragma once
// AgreementStore: what shadow evaluation has measured, shared by every process. A shadow
// comparison (a ticket a cheaper tier answered, answered again by the reference tier) counts once
// per (tenant, ticket, revision, tier) however often its message is redelivered, into per
// tier x category counters, and its features and verdict are kept as a training example for the
// escalation verifier (a stream capped at kMaxLabels, oldest dropped). Final answers per
// tier x category are counted too (`answered`), so the agreement of all final answers can be
// estimated (each tier's agreement weighted by its share; the reference tier agrees with itself).
//
// Keys: <prefix>shadow:counts (hash "tier|category|field"), <prefix>shadow:labels (stream),
// <prefix>shadow:seen:<tenant>:<ticket>:<revision>:<tier> (30 days; reset() removes them too, so a
// replay after a reset counts again).
// Threading: thread-safe (the pool is).

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ticketflow/classify/escalation_model.hpp"
#include "ticketflow/core/result.hpp"
#include "ticketflow/redis/pool.hpp"

namespace ticketflow::redis {

// One shadow comparison.
struct ShadowComparison {
  std::string tenant, ticket_id;
  std::int64_t revision = 0;
  classify::AgreementLabel label;  // tier, classifier category, features, agreed (both fields)
  bool category_agrees = false;
  bool needs_human_agrees = false;
  // A final answer's comparison counts in the table; one the verifier sent up is a label only.
  bool final_answer = true;
};

// A proportion with its 95% Wilson score interval.
struct Proportion {
  std::int64_t successes = 0, trials = 0;
  double estimate() const { return trials ? static_cast<double>(successes) / static_cast<double>(trials) : 0.0; }
  double lower() const;
  double upper() const;
};

struct AgreementCell {
  std::int64_t answered = 0;  // final answers of the tier in the category
  Proportion category, needs_human, both;
};

// tier -> category -> cell
using AgreementTable = std::map<std::string, std::map<std::string, AgreementCell>>;

class AgreementStore {
 public:
  static constexpr std::int64_t kMaxLabels = 200'000;
  AgreementStore(std::shared_ptr<RedisPool> pool, std::string key_prefix);

  // Counts the comparison unless it was counted before: true if counted now.
  Result<bool> record(const ShadowComparison& comparison);
  // A tier's final answer in a category (not deduplicated: a weight, not a verdict).
  Status countAnswered(const std::string& tier, const std::string& category);
  Result<AgreementTable> table();
  // The newest `limit` training examples, oldest first.
  Result<std::vector<classify::AgreementLabel>> labels(std::int64_t limit = kMaxLabels);
  // Forgets every count and example (a new model or profile makes old verdicts stale).
  Status reset();

 private:
  std::shared_ptr<RedisPool> pool_;
  std::string prefix_;
};

}  // namespace ticketflow::redis
