#include <atomic>
#include <cmath>
#include <list>
#include <mutex>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "ticketflow/core/utf8.hpp"
#include "ticketflow/embed/embedder.hpp"
#include "ticketflow/provider/model_client.hpp"
#include "ticketflow/provider/resilience.hpp"

namespace ticketflow::embed {
namespace {

using nlohmann::json;

// Embedding models take about 8k tokens; 16 KB of text stays well inside that for any language
// and keeps a pasted log from costing a large call.
constexpr std::size_t kMaxInputBytes = 16 * 1024;

}  // namespace

struct OpenAiEmbedder::State {
  explicit State(const Clock& c) : clock(c), breaker(provider::BreakerPolicy{}, c) {}
  const Clock& clock;
  provider::CircuitBreaker breaker;
  std::mutex mutex;
  // Most recently used first; the map finds a text's node by its 64-bit hash, the node keeps the
  // text so a hash collision is never mistaken for a hit.
  struct Memo {
    std::uint64_t hash;
    std::string text;
    std::vector<float> vector;
  };
  std::list<Memo> recent;
  std::unordered_map<std::uint64_t, std::list<Memo>::iterator> index;
  std::atomic<std::uint64_t> calls{0};
};

OpenAiEmbedder::OpenAiEmbedder(OpenAiEmbedderOptions options, std::shared_ptr<http::HttpClient> http,
                               const Clock& clock)
    : options_(std::move(options)), http_(std::move(http)), state_(std::make_unique<State>(clock)) {}

OpenAiEmbedder::~OpenAiEmbedder() = default;

std::uint64_t OpenAiEmbedder::calls() const {
  return state_->calls.load();
}

Result<std::vector<float>> OpenAiEmbedder::embed(std::string_view text) const {
  const std::string_view input = utf8BytePrefix(text, kMaxInputBytes);
  const std::uint64_t key = cacheHash64(input);
  {
    std::lock_guard lock(state_->mutex);
    if (auto it = state_->index.find(key); it != state_->index.end() && it->second->text == input) {
      state_->recent.splice(state_->recent.begin(), state_->recent, it->second);
      return it->second->vector;
    }
  }
  const std::string who = "embeddings endpoint of provider " + options_.provider_name;
  if (!state_->breaker.allow()) return Error::unavailable(who + ": circuit open after repeated failures");
  json body = {{"model", options_.model_id}, {"input", std::string(input)}, {"encoding_format", "float"}};
  if (options_.send_dimensions) body["dimensions"] = options_.dimension;
  http::ClientRequest request;
  request.url = options_.url;
  if (!options_.api_key.empty()) request.headers.emplace_back("Authorization", "Bearer " + options_.api_key);
  for (const auto& header : options_.headers) request.headers.push_back(header);
  request.body = body.dump();
  state_->calls.fetch_add(1);
  auto response = http_->send(request);
  if (!response) {
    state_->breaker.onFailure();
    return response.error();
  }
  if (response->status < 200 || response->status >= 300) {
    state_->breaker.onFailure();
    return provider::errorForStatus(response->status, who,
                                    provider::parseResetHint(response->header("retry-after"), state_->clock.now()));
  }
  std::vector<float> vector;
  try {
    const json reply = json::parse(response->body);
    for (const auto& x : reply.at("data").at(0).at("embedding")) vector.push_back(x.get<float>());
  } catch (const json::exception&) {
    state_->breaker.onFailure();
    return Error::malformed(who + " returned a body that is not an embeddings response");
  }
  if (vector.size() != static_cast<std::size_t>(options_.dimension)) {
    state_->breaker.onFailure();
    return Error::malformed(who + " returned " + std::to_string(vector.size()) +
                            " dimensions; cache.embedder.dimension is " + std::to_string(options_.dimension));
  }
  state_->breaker.onSuccess();
  double norm2 = 0;
  for (float x : vector) norm2 += static_cast<double>(x) * x;
  if (norm2 > 0) {
    const auto inv = static_cast<float>(1.0 / std::sqrt(norm2));
    for (float& x : vector) x *= inv;
  }
  std::lock_guard lock(state_->mutex);
  if (state_->index.count(key)) return vector;  // another thread embedded the same text meanwhile
  state_->recent.push_front({key, std::string(input), vector});
  state_->index[key] = state_->recent.begin();
  if (state_->recent.size() > options_.memo_entries) {
    state_->index.erase(state_->recent.back().hash);
    state_->recent.pop_back();
  }
  return vector;
}

std::shared_ptr<const Embedder> makeEmbedder(const Config& config) {
  const CacheConfig& cache = config.cache;
  if (cache.embedder == EmbedderKind::kHashing) return std::make_shared<HashingEmbedder>(cache.dimension);
  const ProviderConfig* provider = config.findProvider(cache.embedder_provider);
  if (!provider)
    throw ConfigError(config.source, "/cache/embedder/provider", "no provider named '" + cache.embedder_provider + "'");
  OpenAiEmbedderOptions options;
  options.provider_name = provider->name;
  options.url = http::joinUrl(provider->base_url, "/embeddings");
  options.model_id = cache.embedder_model;
  options.api_key = provider::providerApiKey(config, *provider);
  options.headers.assign(provider->headers.begin(), provider->headers.end());
  options.dimension = cache.dimension;
  options.send_dimensions = cache.embedder_send_dimensions;
  return std::make_shared<OpenAiEmbedder>(
      options, std::make_shared<http::HttpClient>(http::providerClientOptions(*provider, config.proxy)));
}

}  // namespace ticketflow::embed
