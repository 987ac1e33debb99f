#pragma once
// The provider simulator: an HTTP server speaking OpenAI Chat Completions and Anthropic
// Messages on loopback, for the demo, tests and benchmarks. Per-model profiles set latency
// (log-normal median/p99), token counts, rate limits and fault rates (429 with retry-after, 500,
// 503, hang-until-timeout, malformed JSON, JSON in code fences, JSON wrapped in prose). It also
// answers OpenAI's /embeddings (deterministic vectors, for the cache's remote embedder). Reply
// content is deterministic for a given ticket, model and seed, built from the runbook snippets,
// and always says it is simulated. Faults are drawn per request from a seeded generator.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "competence.hpp"
#include "ticketflow/config/config.hpp"
#include "ticketflow/domain/messages.hpp"
#include "ticketflow/http/server.hpp"

namespace ticketflow::sim {

struct FaultRates {
  double rate_429 = 0;
  int retry_after_s = 1;
  double rate_500 = 0;
  double rate_503 = 0;
  double rate_hang = 0;
  int hang_s = 120;
  double rate_malformed = 0;
  double rate_fenced = 0;
  double rate_prose = 0;
};

struct ModelProfile {
  double latency_median_ms = 900;
  double latency_p99_ms = 4000;
  double chars_per_token = 4.0;
  std::int64_t rpm = 0;  // 0: unlimited
  std::int64_t tpm = 0;
  FaultRates faults;
  // Whether answers are right and how sure they say they are (competence.hpp). None: every answer
  // is the best-matching runbook's, with its confidence (tests that need fixed answers).
  std::optional<Competence> competence;
};

struct Runbook {
  std::string id;
  std::vector<std::string> keywords;
  std::string category;
  std::string summary;
  std::string reply;
  std::vector<std::string> steps;
  bool needs_human = false;
  std::string needs_human_reason;
  double confidence = 0.5;
};

struct SimulatorOptions {
  std::uint64_t seed = 20261122;
  ModelProfile default_profile;
  std::map<std::string, ModelProfile> profiles;  // by model id
  std::vector<Runbook> runbooks;                 // the last one with no keywords is the fallback
  // The true category of tickets whose body the caller knows the label of (a labelled backlog):
  // "right" then means that category (competence.hpp).
  TicketLabels labels;
  double latency_scale = 1.0;  // 0: answer at once (benchmarks)
  bool faults_enabled = true;
  std::string expected_api_key;  // empty: accept any key; else 401 on a mismatch
  std::string request_log;       // JSONL file of every request, "" for none
  bool log_bodies = false;       // include request bodies in the log (tests only)
  int port = 0;
  int max_threads = 512;
};

// What the simulator billed, from its request log (SimulatorOptions::request_log): every model
// request it answered with a whole reply (status 200, not a cut-off body), priced from
// `config`'s table as the tier pools price it. A model id the configuration lacks counts in
// `unknown_models`.
struct BilledRequests {
  MicroUsd micro_usd = 0;
  std::int64_t requests = 0;
  std::int64_t unknown_models = 0;
};
BilledRequests billedFromRequestLog(const Config& config, const std::string& request_log);

// The true categories of labelled tickets (metadata.label, from a file's `label` or `category`
// column), for SimulatorOptions::labels.
TicketLabels labelsOf(const std::vector<Ticket>& tickets);

// Parses profile and runbook YAML texts (config/sim_profiles.yaml, config/runbooks.yaml).
// Throws ConfigError naming the source and field.
SimulatorOptions loadSimulatorOptions(const std::string& profiles_yaml, const std::string& profiles_source,
                                      const std::string& runbooks_yaml, const std::string& runbooks_source);

struct SimulatorStats {
  std::int64_t requests = 0;
  std::int64_t ok = 0;
  std::int64_t rate_limited = 0;
  std::int64_t server_errors = 0;
  std::int64_t hangs = 0;
  std::int64_t malformed = 0;
  std::int64_t unauthorized = 0;
  std::int64_t max_concurrent = 0;  // the most model requests being answered at once
  std::int64_t embeddings = 0;      // /embeddings requests (not in `requests`)
  std::int64_t in_flight = 0;       // model requests being answered now
};

class ProviderSimulator {
 public:
  explicit ProviderSimulator(SimulatorOptions options);
  ~ProviderSimulator();
  ProviderSimulator(const ProviderSimulator&) = delete;
  ProviderSimulator& operator=(const ProviderSimulator&) = delete;

  int port() const { return server_->port(); }
  std::string baseUrl() const { return "http://127.0.0.1:" + std::to_string(port()); }
  SimulatorStats stats() const;
  // A provider incident: while set, every model request is answered 503 (nothing billed), as a
  // provider's outage looks to its clients. Fault tests turn it on and off.
  void setUnavailable(bool unavailable) { unavailable_.store(unavailable); }

  // One request; public so unit tests can drive it without sockets.
  http::HttpResponse handle(const http::HttpRequest& request);

 private:
  http::HttpResponse handleEmbeddings(const http::HttpRequest& request);
  // A key is needed, and must be the expected one when options name one. Never logged.
  bool keyAccepted(const std::string& key) const;
  const ModelProfile& profileFor(const std::string& model) const;
  // The answer's fields for a ticket (the text inside the prompt's ticket block); `log_entry`
  // gains what the competence model drew.
  nlohmann::json answerFor(const std::string& ticket_block, const std::string& model, const ModelProfile& profile,
                           nlohmann::json& log_entry) const;
  const Runbook* runbookOfCategory(const std::string& category) const;
  // Sleeps up to `ms` unless the simulator is stopping.
  void pause(double ms);
  void log(const nlohmann::json& entry);

  SimulatorOptions options_;
  std::vector<std::string> categories_;  // of the runbooks and the labels: what a wrong answer picks from
  std::mutex rng_mutex_;
  std::mt19937_64 rng_;
  std::mutex windows_mutex_;
  std::map<std::string, std::deque<std::pair<std::int64_t, std::int64_t>>> windows_;  // model -> (ms, tokens)
  std::mutex log_mutex_;
  std::ofstream log_;
  std::mutex stop_mutex_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::atomic<bool> unavailable_{false};
  std::atomic<std::int64_t> requests_{0}, ok_{0}, rate_limited_{0}, server_errors_{0}, hangs_{0}, malformed_{0},
      unauthorized_{0}, in_flight_{0}, max_concurrent_{0}, embeddings_{0};
  std::unique_ptr<http::HttpServer> server_;  // last: stopped first
};

}  // namespace ticketflow::sim
