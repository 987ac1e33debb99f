#pragma once
// Turns whatever a model wrote into the answer shape of schemas/common.schema.json#/$defs/answer.
// Models drift: JSON inside code fences or wrapped in prose, keys in other casings
// ("resolutionSteps", "Needs Human"), confidence as "85%" or 85, steps as one string. What can be
// read unambiguously is accepted; what cannot is an error the caller answers with one repair
// request, then escalation. A returned Answer always validates against the schema.

#include <string>
#include <string_view>

#include "ticketflow/core/result.hpp"
#include "ticketflow/domain/messages.hpp"

namespace ticketflow::provider {

// kMalformed (no JSON object found / not parseable) or kSchemaViolation (a required field is
// missing or unusable); the message says which, for the repair prompt.
Result<Answer> normaliseAnswer(std::string_view model_text);

// The follow-up user message asking the model to fix its reply.
std::string repairInstruction(const Error& problem);

}  // namespace ticketflow::provider
