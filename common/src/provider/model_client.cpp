#include "ticketflow/provider/model_client.hpp"

#include <charconv>
#include <cmath>
#include <ctime>

#include "ticketflow/core/clock.hpp"
#include "ticketflow/core/json_parse.hpp"
#include "ticketflow/core/json_writer.hpp"

namespace ticketflow::provider {
namespace {

using nlohmann::json;

using http::joinUrl;

}  // namespace

std::string toStoredReply(const ModelReply& reply, const std::string& model) {
  JsonWriter w;
  w.beginObject()
      .field("content", reply.content)
      .field("cost_micro_usd", reply.cost_micro_usd)
      .field("input_tokens", reply.usage.input_tokens)
      .field("model", model)
      .field("output_tokens", reply.usage.output_tokens)
      .field("response_id", reply.response_id)
      .field("simulated", reply.simulated)
      .endObject();
  return w.take();
}

Result<StoredReply> parseStoredReply(std::string_view text) {
  auto doc = parseJsonText(text);
  if (!doc || !doc->is_object()) return Error::malformed("stored reply is not a JSON object");
  try {
    StoredReply stored;
    stored.model = doc->at("model").get<std::string>();
    ModelReply& reply = stored.reply;
    reply.content = doc->at("content").get<std::string>();
    reply.cost_micro_usd = doc->at("cost_micro_usd").get<MicroUsd>();
    reply.usage.input_tokens = doc->at("input_tokens").get<std::int64_t>();
    reply.usage.output_tokens = doc->at("output_tokens").get<std::int64_t>();
    reply.response_id = doc->value("response_id", std::string());
    reply.simulated = doc->value("simulated", false);
    return stored;
  } catch (const json::exception& e) {
    return Error::malformed(std::string("stored reply: ") + e.what());
  }
}

Error errorForStatus(int status, const std::string& who, std::optional<std::chrono::milliseconds> retry_after) {
  const std::string msg = who + " answered HTTP " + std::to_string(status);
  if (status == 429) return Error::rateLimited(msg, retry_after ? retry_after->count() : -1);
  if (status == 408 || status == 504) return Error::timeout(msg);
  if (status >= 500) {
    Error e = Error::unavailable(msg);
    if (retry_after) e.retry_after_ms = retry_after->count();
    return e;
  }
  if (status == 401 || status == 403) {
    Error e = Error::unavailable(msg + " (check the API key in the provider's api_key_env)");
    e.retriable = false;
    return e;
  }
  return Error::invalidArgument(msg);
}

std::string providerApiKey(const Config& config, const ProviderConfig& provider, EnvLookup env) {
  if (provider.api_key_env.empty()) return "";
  auto value = env(provider.api_key_env);
  if (!value || value->empty()) {
    std::size_t index = 0;
    while (index < config.providers.size() && config.providers[index].name != provider.name) ++index;
    throw ConfigError(config.source, "providers[" + std::to_string(index) + "].api_key_env",
                      "environment variable " + provider.api_key_env + " is not set");
  }
  return *value;
}

namespace {

class HttpModelClient final : public ModelClient {
 public:
  HttpModelClient(ProviderConfig provider, ModelConfig model, std::shared_ptr<http::HttpClient> http, std::string key)
      : provider_(std::move(provider)), model_(std::move(model)), http_(std::move(http)), api_key_(std::move(key)) {}

  const ModelConfig& model() const override { return model_; }
  const ProviderConfig& provider() const override { return provider_; }

  Result<ModelReply> complete(const ModelRequest& request) override {
    const bool anthropic = provider_.api == ProviderApi::kAnthropic;
    const auto req = anthropic ? buildAnthropicRequest(provider_, model_, request, api_key_)
                               : buildOpenAiRequest(provider_, model_, request, api_key_);
    auto response = http_->send(req);
    if (!response) return response.error();
    const auto now = SystemClock::instance().now();
    RateLimitHints hints;
    const std::string prefix = anthropic ? "anthropic-ratelimit-" : "x-ratelimit-";
    auto number = [&](const std::string& name) -> std::optional<std::int64_t> {
      const std::string v = response->header(name);
      if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
      return std::stoll(v);
    };
    hints.limit_requests = number(prefix + (anthropic ? "requests-limit" : "limit-requests"));
    hints.limit_tokens = number(prefix + (anthropic ? "tokens-limit" : "limit-tokens"));
    hints.remaining_requests = number(prefix + (anthropic ? "requests-remaining" : "remaining-requests"));
    hints.remaining_tokens = number(prefix + (anthropic ? "tokens-remaining" : "remaining-tokens"));
    hints.reset_requests =
        parseResetHint(response->header(prefix + (anthropic ? "requests-reset" : "reset-requests")), now);
    hints.reset_tokens = parseResetHint(response->header(prefix + (anthropic ? "tokens-reset" : "reset-tokens")), now);
    if (auto ms = number("retry-after-ms"))
      hints.retry_after = std::chrono::milliseconds(*ms);  // OpenAI's, finer
    else
      hints.retry_after = parseResetHint(response->header("retry-after"), now);
    if (response->status < 200 || response->status >= 300) {
      auto retry =
          hints.retry_after ? hints.retry_after : (hints.reset_requests ? hints.reset_requests : hints.reset_tokens);
      return errorForStatus(response->status, provider_.name, retry);
    }
    const json body = parseJsonText(response->body).value_or(json());
    ModelReply reply;
    reply.hints = hints;
    reply.simulated = response->header("x-ticketflow-simulated") == "true";
    try {
      if (anthropic) {
        for (const auto& part : body.at("content"))
          if (part.value("type", "") == "text") reply.content += part.at("text").get<std::string>();
        reply.usage.input_tokens = body.at("usage").at("input_tokens").get<std::int64_t>();
        reply.usage.output_tokens = body.at("usage").at("output_tokens").get<std::int64_t>();
      } else {
        const json& message = body.at("choices").at(0).at("message");
        if (message.contains("content") && message["content"].is_string()) reply.content = message["content"];
        reply.usage.input_tokens = body.at("usage").at("prompt_tokens").get<std::int64_t>();
        reply.usage.output_tokens = body.at("usage").at("completion_tokens").get<std::int64_t>();
      }
      reply.response_id = body.value("id", "");
    } catch (const json::exception&) {
      Error e = Error::malformed(provider_.name + " returned a body that is not a " +
                                 (anthropic ? "Messages" : "Chat Completions") + " response");
      e.retriable = true;
      return e;
    }
    reply.cost_micro_usd = model_.costMicroUsd(reply.usage.input_tokens, reply.usage.output_tokens);
    return reply;
  }

 private:
  ProviderConfig provider_;
  ModelConfig model_;
  std::shared_ptr<http::HttpClient> http_;
  std::string api_key_;
};

// Plain seconds ("2", "1.5"), or parts with units ("6m0s", "20ms", "1h"); spaces around allowed.
std::optional<double> parseDurationMs(std::string_view text) {
  const std::size_t first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return std::nullopt;
  text = text.substr(first, text.find_last_not_of(" \t") - first + 1);
  const bool plain_seconds = text.find_first_of("hms") == std::string_view::npos;
  double total_ms = 0;
  for (const char* at = text.data(); at != text.data() + text.size();) {
    double n = 0;
    const auto [end, ec] = std::from_chars(at, text.data() + text.size(), n, std::chars_format::fixed);
    if (ec != std::errc() || n < 0) return std::nullopt;
    const std::string_view unit(end, static_cast<std::size_t>(text.data() + text.size() - end));
    if (plain_seconds) return unit.empty() ? std::optional<double>(n * 1000) : std::nullopt;
    std::size_t unit_length = 1;
    if (unit.starts_with("ms"))
      total_ms += n, unit_length = 2;
    else if (unit.starts_with("h"))
      total_ms += n * 3'600'000;
    else if (unit.starts_with("m"))
      total_ms += n * 60'000;
    else if (unit.starts_with("s"))
      total_ms += n * 1000;
    else
      return std::nullopt;
    at = end + unit_length;
  }
  return total_ms;
}

void writeTurn(JsonWriter& body, const std::string& role, const std::string& content) {
  body.beginObject().field("content", content).field("role", role).endObject();
}

}  // namespace

http::ClientRequest buildOpenAiRequest(const ProviderConfig& provider, const ModelConfig& model,
                                       const ModelRequest& request, const std::string& api_key) {
  JsonWriter body;
  body.beginObject().field("max_tokens", request.max_output_tokens).key("messages").beginArray();
  writeTurn(body, "system", request.system_prompt);
  writeTurn(body, "user", request.user_content);
  for (const auto& turn : request.follow_up) writeTurn(body, turn.role, turn.content);
  body.endArray().field("model", model.model_id);
  // Reasoning models reject any temperature but their default, so it is sent only when set.
  if (request.temperature) body.field("temperature", *request.temperature);
  body.endObject();
  http::ClientRequest req;
  req.url = joinUrl(provider.base_url, "/chat/completions");
  req.headers = {{"Authorization", "Bearer " + api_key}};
  for (const auto& [k, v] : provider.headers) req.headers.emplace_back(k, v);
  req.body = body.take();
  return req;
}

http::ClientRequest buildAnthropicRequest(const ProviderConfig& provider, const ModelConfig& model,
                                          const ModelRequest& request, const std::string& api_key) {
  JsonWriter body;
  body.beginObject().field("max_tokens", request.max_output_tokens).key("messages").beginArray();
  writeTurn(body, "user", request.user_content);
  for (const auto& turn : request.follow_up) writeTurn(body, turn.role, turn.content);
  body.endArray().field("model", model.model_id).field("system", request.system_prompt);
  if (request.temperature) body.field("temperature", *request.temperature);
  body.endObject();
  http::ClientRequest req;
  req.url = joinUrl(provider.base_url, "/v1/messages");
  req.headers = {{"x-api-key", api_key}, {"anthropic-version", "2023-06-01"}};
  for (const auto& [k, v] : provider.headers) req.headers.emplace_back(k, v);
  req.body = body.take();
  return req;
}

std::unique_ptr<ModelClient> makeModelClient(const ProviderConfig& provider, const ModelConfig& model,
                                             std::shared_ptr<http::HttpClient> http, std::string api_key) {
  return std::make_unique<HttpModelClient>(provider, model, std::move(http), std::move(api_key));
}

std::optional<std::chrono::milliseconds> parseResetHint(const std::string& value,
                                                        std::chrono::system_clock::time_point now) {
  if (value.empty()) return std::nullopt;
  if (auto ms = parseDurationMs(value)) return std::chrono::milliseconds(static_cast<std::int64_t>(std::ceil(*ms)));
  if (auto at = parseRfc3339(value)) {  // Anthropic's reset headers
    const auto delta = std::chrono::duration_cast<std::chrono::milliseconds>(*at - now);
    return std::max(delta, std::chrono::milliseconds(0));
  }
  return std::nullopt;
}

}  // namespace ticketflow::provider
