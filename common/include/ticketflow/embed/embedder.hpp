#pragma once
// Embedders turn ticket text into a unit vector for the semantic cache (redis/semantic_cache.hpp)
// and the in-flight registry; this room knows nothing of Redis. The default,
// HashingEmbedder, is deterministic and needs nothing outside the binary: normalised word
// 1-2-grams and character 3-5-grams within word boundaries, sublinear term frequency,
// boilerplate words (greetings, sign-offs, "please") weighted by boilerplate_factor, signed
// feature hashing into
// `dimension` buckets, L2-normalised. The defaults were chosen with `ticketflow cache eval` on the
// it-tickets dev stream (docs/semantic-cache.md): weighting the helpdesk's boilerplate words
// up, not down, gave more hits at the same label agreement, because in this corpus how a ticket
// is phrased ("please help", "kind regards", "need access") tells its category. Every process and every version with
// the same options produces the same vector, so entries written by one replica are found by all.
//
// Threading: embed() is const and thread-safe.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ticketflow/config/config.hpp"
#include "ticketflow/core/clock.hpp"
#include "ticketflow/core/result.hpp"
#include "ticketflow/http/client.hpp"

namespace ticketflow::embed {

class Embedder {
 public:
  virtual ~Embedder() = default;
  virtual int dimension() const = 0;
  // A unit-length vector (all zeros for text with no features).
  virtual Result<std::vector<float>> embed(std::string_view text) const = 0;
};

// Lower-case ASCII letters and digits; every other byte separates words; runs of digits become
// "0" (ticket numbers, IPs and dates carry no meaning for similarity). Used for the exact-match
// key too.
std::string normaliseForCache(std::string_view text);

struct HashingEmbedderOptions {
  double word_weight = 1.0;
  double bigram_weight = 1.0;
  double char_weight = 1.0;
  double boilerplate_factor = 3.0;  // weight of greetings, sign-offs, function words
  int char_min = 3;
  int char_max = 5;
  bool sublinear_tf = true;       // 1 + log(count) instead of count
  bool normalise_groups = false;  // each group unit length before mixing
};

class HashingEmbedder final : public Embedder {
 public:
  explicit HashingEmbedder(int dimension, HashingEmbedderOptions options = {});
  int dimension() const override { return dimension_; }
  Result<std::vector<float>> embed(std::string_view text) const override;

 private:
  int dimension_;
  HashingEmbedderOptions options_;
};

// An OpenAI-compatible embeddings endpoint (POST {base_url}/embeddings: OpenAI, Azure OpenAI
// behind a gateway, LiteLLM, vLLM, Ollama, ...). Sends the ticket text (truncated to 16 KB at a
// character boundary), asks for `dimension` dimensions when send_dimensions is on (the
// text-embedding-3 models and other Matryoshka models honour it), checks the answer has that
// many, and L2-normalises it. Resilience: a circuit breaker per embedder, so a dead endpoint
// costs a ticket nothing but a skipped cache lookup once it is open; the last
// `memo_entries` texts' vectors are kept, so the lookup and the insert of one ticket in one
// process make one call. Never logs the text or the key. Thread-safe.
struct OpenAiEmbedderOptions {
  std::string provider_name;  // for error messages
  std::string url;            // the full endpoint URL
  std::string model_id;
  std::string api_key;  // sent as a bearer token; "" sends none
  std::vector<std::pair<std::string, std::string>> headers;
  int dimension = 512;
  bool send_dimensions = true;
  std::size_t memo_entries = 1024;
};

class OpenAiEmbedder final : public Embedder {
 public:
  OpenAiEmbedder(OpenAiEmbedderOptions options, std::shared_ptr<http::HttpClient> http,
                 const Clock& clock = SystemClock::instance());
  ~OpenAiEmbedder() override;
  int dimension() const override { return options_.dimension; }
  Result<std::vector<float>> embed(std::string_view text) const override;
  // Calls that reached the endpoint (memoised texts and calls refused by the breaker do not).
  std::uint64_t calls() const;

 private:
  struct State;
  OpenAiEmbedderOptions options_;
  std::shared_ptr<http::HttpClient> http_;
  std::unique_ptr<State> state_;
};

// The hash the embedder's features and the cache's exact-match keys use: 64-bit FNV-1a with a
// final avalanche (stable across platforms; changing it changes every stored vector and key).
std::uint64_t cacheHash64(std::string_view data, std::uint64_t seed = 0xcbf29ce484222325ULL);

// The configured embedder (cache.embedder): the hashing embedder, or an OpenAI-compatible
// embeddings endpoint of a configured provider (throws ConfigError for an unknown provider or an
// unset API key variable).
std::shared_ptr<const Embedder> makeEmbedder(const Config& config);

}  // namespace ticketflow::embed
