#include "cost_model.hpp"

#include <algorithm>

namespace ticketflow::triage {

CostModel::CostModel(const Config& config, std::int64_t assumed_output_tokens)
    : config_(config), prompts_(provider::PromptSet::builtin()), output_tokens_(assumed_output_tokens) {}

const ModelConfig& CostModel::primaryOf(const std::string& tier) const {
  const TierConfig* t = config_.findTier(tier);
  if (!t) t = &config_.tiers.back();
  return *config_.findModel(t->models.front());
}

std::int64_t CostModel::promptTokens(const Ticket& ticket, const std::string& category,
                                     const ModelConfig& model) const {
  return provider::estimatePromptTokens(provider::buildModelRequest(prompts_, ticket, category, model));
}

MicroUsd CostModel::projected(const std::string& tier, const Ticket& ticket, const std::string& category) const {
  const ModelConfig& model = primaryOf(tier);
  return model.costMicroUsd(promptTokens(ticket, category, model),
                            std::min<std::int64_t>(output_tokens_, model.max_output_tokens));
}

MicroUsd CostModel::frontier(const Ticket& ticket, const std::string& category, const TokenUsage& usage) const {
  const ModelConfig& model = primaryOf(frontierTier());
  if (usage.input_tokens > 0) return model.costMicroUsd(usage.input_tokens, usage.output_tokens);
  return model.costMicroUsd(promptTokens(ticket, category, model),
                            std::min<std::int64_t>(output_tokens_, model.max_output_tokens));
}

}  // namespace ticketflow::triage
