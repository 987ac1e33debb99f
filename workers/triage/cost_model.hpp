#pragma once
// What a ticket costs on a tier's primary model, for the dry run's projection and for both runs'
// all-frontier baseline: prompt tokens estimated from the prompt the tier would send, output
// tokens assumed (`--output-tokens`) unless a live call measured them.

#include <cstdint>
#include <string>

#include "ticketflow/config/config.hpp"
#include "ticketflow/domain/messages.hpp"
#include "ticketflow/provider/prompt.hpp"

namespace ticketflow::triage {

class CostModel {
 public:
  // Keeps a reference to `config`, which must outlive it.
  CostModel(const Config& config, std::int64_t assumed_output_tokens);
  // The tier's primary model, prompt estimated, output assumed.
  MicroUsd projected(const std::string& tier, const Ticket& ticket, const std::string& category) const;
  // The frontier tier's primary model with `usage` when a call was made, else estimated.
  MicroUsd frontier(const Ticket& ticket, const std::string& category, const TokenUsage& usage) const;
  const std::string& frontierTier() const { return config_.tiers.back().name; }

 private:
  const ModelConfig& primaryOf(const std::string& tier) const;
  std::int64_t promptTokens(const Ticket& ticket, const std::string& category, const ModelConfig& model) const;
  const Config& config_;
  provider::PromptSet prompts_;
  std::int64_t output_tokens_;
};

}  // namespace ticketflow::triage
