#pragma once
// Builds the request a tier sends: a system prompt for the ticket's category (the specialist)
// and the ticket as clearly delimited, untrusted user data. Text inside the ticket can never
// close its block or pose as instructions outside it.

#include <map>
#include <string>

#include "ticketflow/domain/messages.hpp"
#include "ticketflow/provider/model_client.hpp"

namespace ticketflow::provider {

struct PromptSet {
  std::string base;
  std::string default_specialist;
  std::map<std::string, std::string> specialists;  // by category
  std::string output_contract;

  // From config/prompts.yaml text; throws ConfigError naming the source and field.
  static PromptSet parse(const std::string& yaml_text, const std::string& source);
  // The embedded config/prompts.yaml.
  static PromptSet builtin();
};

std::string systemPromptFor(const PromptSet& prompts, const std::string& category);

// The user message: a short framing line and the ticket inside <ticket>...</ticket>. A body longer
// than `max_body_bytes` keeps its first two thirds and last third of that (cut on character
// boundaries), with a marker saying how many characters were left out (added to *chars_cut).
std::string ticketUserContent(const Ticket& ticket, std::size_t max_body_bytes = SIZE_MAX,
                              std::int64_t* chars_cut = nullptr);

// Prompt tokens of a request, estimated high (3 characters a token plus framing per message) so
// that a budget reservation made from it is not below the billed cost.
std::int64_t estimatePromptTokens(const ModelRequest& request);

// The request for `model`: its output cap, and the ticket cut to its max_ticket_tokens (or to what
// its context window leaves, if less).
ModelRequest buildModelRequest(const PromptSet& prompts, const Ticket& ticket, const std::string& category,
                               const ModelConfig& model);

}  // namespace ticketflow::provider
