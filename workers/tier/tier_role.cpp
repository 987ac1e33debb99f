#include "tier_role.hpp"

#include <algorithm>

namespace ticketflow::tier {

TierRole::TierRole(const Config& config, TierService& service, int call_threads, const Clock& clock)
    : config_(config), service_(service), clock_(clock), calls_(call_threads) {}

stage::Handler TierRole::handler() {
  return [this](const std::shared_ptr<const stage::Delivery>& delivery, stage::Completion completion) {
    calls_.submit([this, delivery, completion] { handle(*delivery, completion); });
  };
}

void TierRole::handle(const stage::Delivery& delivery, const stage::Completion& completion) {
  auto routed = parseRoutedTicket(delivery.message.value);
  if (!routed) return completion.fail(routed.error());  // malformed: dead letter at once
  auto outcome = service_.handle(*routed);
  if (!outcome) return completion.fail(outcome.error());
  if (outcome->kind == TierOutcomeKind::kEscalate) {
    RoutedTicket up = *routed;
    up.tier = outcome->next_tier;
    up.escalations = routed->escalations + 1;
    up.rule = ("escalated from " + routed->tier + ": " + outcome->reason).substr(0, 200);
    return completion.succeed({{config_.kafka.tierTopic(up.tier), routed->ticket.id, toJson(up).dump(), {}}});
  }
  TicketResult& result = outcome->result;
  if (auto received = parseRfc3339(routed->received_at)) {  // end to end, from intake's receipt
    result.latency_ms = std::max<std::int64_t>(
        0, std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now() - *received).count());
  }
  completion.succeed({{config_.kafka.topics.results, routed->ticket.id, toJson(result).dump(), {}}});
}

int callThreadsFor(const Config& config, const std::string& tier) {
  int threads = 0;
  if (const TierConfig* t = config.findTier(tier)) {
    for (const auto& name : t->models)
      if (const ModelConfig* m = config.findModel(name)) threads = std::max(threads, m->limits.max_concurrency);
  }
  return std::clamp(threads == 0 ? 64 : threads, 1, 512);
}

}  // namespace ticketflow::tier
