#pragma once
// ModelClient: one call to one model, over one of the two wire protocols every provider we
// support speaks: OpenAI-compatible Chat Completions (OpenAI, OpenRouter, LiteLLM, vLLM, Ollama,
// DeepSeek, Groq, ...) and Anthropic Messages. Reads token usage from the response and prices
// it from the configured table in integer micro-dollars. The model id is sent exactly as
// configured. Thread-safe; a client is shared by all calls to its model.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ticketflow/config/config.hpp"
#include "ticketflow/core/result.hpp"
#include "ticketflow/domain/messages.hpp"
#include "ticketflow/http/client.hpp"

namespace ticketflow::provider {

struct ChatTurn {
  std::string role;  // "assistant" or "user"
  std::string content;
};

struct ModelRequest {
  std::string system_prompt;
  std::string user_content;         // the ticket, inside its delimited block (see prompt.hpp)
  std::vector<ChatTurn> follow_up;  // e.g. the model's unusable reply and our repair request
  int max_output_tokens = 1024;
  std::optional<double> temperature;  // provider default when unset
  std::int64_t ticket_chars_cut = 0;  // characters of the ticket body left out (prompt.hpp)
};

// What a provider told us about its limits, from headers, for the rate limiter to adapt.
struct RateLimitHints {
  std::optional<std::int64_t> limit_requests;
  std::optional<std::int64_t> limit_tokens;
  std::optional<std::int64_t> remaining_requests;
  std::optional<std::int64_t> remaining_tokens;
  std::optional<std::chrono::milliseconds> reset_requests;
  std::optional<std::chrono::milliseconds> reset_tokens;
  std::optional<std::chrono::milliseconds> retry_after;
};

struct ModelReply {
  std::string content;  // the model's text, not yet normalised
  TokenUsage usage;
  MicroUsd cost_micro_usd = 0;
  std::string response_id;
  bool simulated = false;  // the provider simulator answered
  RateLimitHints hints;
};

class ModelClient {
 public:
  virtual ~ModelClient() = default;
  // Errors: kRateLimited (retriable, retry_after_ms set when the provider said), kUnavailable
  // (5xx, connection: retriable; 401/403: not), kTimeout (retriable), kInvalidArgument (4xx:
  // not retriable), kMalformed (a 2xx body that is not the protocol's shape: retriable once).
  virtual Result<ModelReply> complete(const ModelRequest& request) = 0;
  virtual const ModelConfig& model() const = 0;
  virtual const ProviderConfig& provider() const = 0;
};

// A client for `model` at `provider`, sending `api_key` (from the provider's api_key_env).
std::unique_ptr<ModelClient> makeModelClient(const ProviderConfig& provider, const ModelConfig& model,
                                             std::shared_ptr<http::HttpClient> http, std::string api_key);

// A paid reply as the budget ledger keeps it with its settled request, so a redelivered ticket
// replays it instead of asking (and paying) the provider again. Rate-limit hints are not kept.
// `model`: the configured model that sent the request; a replay stands in only for its calls.
struct StoredReply {
  ModelReply reply;
  std::string model;
};
std::string toStoredReply(const ModelReply& reply, const std::string& model);
Result<StoredReply> parseStoredReply(std::string_view text);

// The request body and headers each protocol needs (exposed for tests).
http::ClientRequest buildOpenAiRequest(const ProviderConfig& provider, const ModelConfig& model,
                                       const ModelRequest& request, const std::string& api_key);
http::ClientRequest buildAnthropicRequest(const ProviderConfig& provider, const ModelConfig& model,
                                          const ModelRequest& request, const std::string& api_key);

// Maps a provider's HTTP status to our error kinds (see ModelClient::complete); `retry_after`
// comes from the response headers.
Error errorForStatus(int status, const std::string& who, std::optional<std::chrono::milliseconds> retry_after);

// The API key named by the provider's api_key_env ("" when it names none). Throws ConfigError
// (file, providers[i].api_key_env) when the variable is unset or empty.
std::string providerApiKey(const Config& config, const ProviderConfig& provider, EnvLookup env = processEnv);

// "1s", "6m0s", "20ms", "1.5s" (OpenAI's reset format), plain seconds ("2"), or an RFC 3339
// time (Anthropic's reset headers) relative to `now`.
std::optional<std::chrono::milliseconds> parseResetHint(const std::string& value,
                                                        std::chrono::system_clock::time_point now);

}  // namespace ticketflow::provider
