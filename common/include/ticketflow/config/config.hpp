#pragma once
// The typed, immutable configuration of a ticketflow process. Loaded and validated once at
// start-up by loadConfig(); after that nobody parses strings. Field meanings are documented in
// config/ticketflow.yaml and schemas/config.schema.json; defaults sit in the initialisers here.

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ticketflow/core/money.hpp"

namespace ticketflow {

// Thrown by loadConfig: one clear line naming the file, the field and the reason.
class ConfigError : public std::runtime_error {
 public:
  ConfigError(std::string file, std::string field, std::string reason, int line = 0);
  const std::string& file() const { return file_; }
  const std::string& field() const { return field_; }
  const std::string& reason() const { return reason_; }

 private:
  std::string file_, field_, reason_;
};

struct KafkaTopics {
  std::string inbound = "tickets.inbound";
  std::string tier_prefix = "tickets.tier.";
  std::string results = "tickets.results";
  std::string updates = "tickets.updates";
  std::string dlq = "tickets.dlq";
  // Tickets a budget cap deferred, parked until their budget window resets or an operator
  // releases them (`ticketflow budget release`); intake's parking stage sends them back.
  std::string deferred = "tickets.deferred";
  // Tickets sampled for shadow evaluation: answered again by the reference tier, never written out.
  std::string shadow = "tickets.shadow";
  // What the helpdesk learned about triaged tickets (schemas/feedback.schema.json).
  std::string feedback = "tickets.feedback";
};

struct KafkaConsumerGroups {
  std::string intake = "ticketflow-intake";
  std::string tier_prefix = "ticketflow-tier-";
  std::string results = "ticketflow-results";
  std::string deferred = "ticketflow-deferred";  // intake's parking stage
  std::string shadow = "ticketflow-shadow";
  std::string feedback = "ticketflow-feedback";
};

struct KafkaConfig {
  std::string bootstrap_servers;
  std::string client_id = "ticketflow";
  int partitions = 8;
  // librdkafka's message.max.bytes for every client. 8 MiB: a ticket at the schema's limits
  // (a 1,048,576-character body, even escaped) and the routed ticket and dead letter made from it.
  std::int64_t max_message_bytes = 8 << 20;
  KafkaTopics topics;
  KafkaConsumerGroups consumer_groups;
  std::map<std::string, std::string> properties;  // librdkafka pass-through

  std::string tierTopic(const std::string& tier) const { return topics.tier_prefix + tier; }
  std::string tierGroup(const std::string& tier) const { return consumer_groups.tier_prefix + tier; }
};

// TLS for rediss:// URLs; relative paths are resolved against the configuration's folder.
struct RedisTlsConfig {
  std::string ca_file;      // PEM bundle of the CAs that sign the servers; empty: the system's store
  std::string cert_file;    // client certificate chain (PEM), for servers that require one
  std::string key_file;     // its private key (PEM)
  std::string server_name;  // sent as SNI and checked against the certificate; empty: the URL's host
};

struct RedisConfig {
  std::string url = "redis://127.0.0.1:6379/0";
  std::string password;
  std::string sentinel_password;  // redis+sentinel:// only, for sentinels that require one
  RedisTlsConfig tls;
  // Writes count as done only once this many replicas have them (WAIT after every pipeline), so
  // a failover cannot lose what was acknowledged; 0: off (asynchronous replication).
  int min_replica_acks = 0;
  int replica_ack_timeout_ms = 1000;
  int pool_size = 8;
  std::string key_prefix = "tf:";
  int connect_timeout_ms = 2000;
  int command_timeout_ms = 500;
};

struct StageConfig {
  int max_in_flight = 1024;
  int worker_threads = 8;
  int max_attempts = 5;
  int retry_backoff_initial_ms = 200;
  int retry_backoff_max_ms = 30000;
  int commit_interval_ms = 1000;
  int drain_deadline_ms = 25000;
  // Outages (Redis, providers, the broker down) hold messages without using attempts; the probe
  // re-runs one held message per cause with a doubling backoff up to this.
  int outage_probe_max_ms = 5000;
  // The longest a message is held for a cause before it is dead-lettered, naming the cause;
  // a cause not listed (or 0) is held for as long as it lasts.
  std::map<std::string, std::int64_t> max_hold_s;
};

enum class ProviderApi { kOpenAi, kAnthropic };

struct ProviderConfig {
  std::string name;
  ProviderApi api = ProviderApi::kOpenAi;
  std::string base_url;
  std::string api_key_env;  // the variable's name; the key itself is read when calling
  int connect_timeout_ms = 3000;
  int read_timeout_ms = 60000;
  int total_timeout_ms = 90000;
  int max_connections = 64;
  std::map<std::string, std::string> headers;
};

struct ModelLimits {
  std::int64_t rpm = 0;  // 0: unlimited
  std::int64_t tpm = 0;
  int max_concurrency = 0;
};

struct ModelConfig {
  std::string name;
  std::string provider;
  std::string model_id;
  MicroUsd input_micro_usd_per_mtok = 0;
  MicroUsd output_micro_usd_per_mtok = 0;
  std::int64_t context_window = 128000;
  int max_output_tokens = 1024;
  // The most of a ticket's text a prompt carries: a 990,000-character ticket must not cost dollars
  // on every tier it climbs. Also capped by what the context window leaves.
  std::int64_t max_ticket_tokens = 8000;
  ModelLimits limits;

  // Exact cost of a call in micro-dollars, rounded up so spend is never under-counted.
  MicroUsd costMicroUsd(std::int64_t input_tokens, std::int64_t output_tokens) const;
};

struct TierConfig {
  std::string name;
  std::vector<std::string> models;
  std::vector<std::string> degraded_fallbacks;
  double escalate_below_confidence = 0.0;
  // The escalation verifier's estimate that the reference tier would agree with the answer
  // (classify/escalation_model.hpp) below this escalates one tier; 0: off.
  double escalate_below_agreement = 0.0;
  // The verifier sends up at most this share of the tier's answers, the most doubtful first
  // (tier/tier_service.hpp EscalationShare); 0: no cap. Holds the load on the tier above.
  double max_escalation_share = 0.0;
};

struct DifficultyConfig {
  double easy_below = 0.35;
  double hard_from = 0.65;
  std::map<std::string, double> weights;  // signal -> weight; empty means built-in weights
};

struct ClassifierConfig {
  std::string category_model = "models/category.tfmodel";  // relative to the config's folder
  std::string escalation_model;                            // the escalation verifier's file; empty: the built-in one
  DifficultyConfig difficulty;
};

// Shares of model-answered tickets each tier should end up answering (routing.targets): the
// difficulty thresholds move online to hold them (redis/route_shares.hpp, docs/routing-targets.md).
struct RoutingTargetsConfig {
  std::map<std::string, double> shares;  // tier -> share of final answers; empty: off
  double tolerance = 0.02;               // a window's share this close to its target moves nothing
  int window = 200;                      // final answers per adjustment
  double gain = 0.25;                    // threshold moved per unit of share error
  bool enabled() const { return !shares.empty(); }
  double shareOf(const std::string& tier) const {
    auto it = shares.find(tier);
    return it == shares.end() ? 0.0 : it->second;
  }
};

struct RoutingConfig {
  std::string easy_tier;    // empty: the first tier
  std::string medium_tier;  // empty: the middle tier
  std::string hard_tier;    // empty: the last tier
  double low_confidence_below = 0.5;
  std::map<std::string, std::string> min_tier_by_category;
  std::map<std::string, std::string> tenant_tiers;
  RoutingTargetsConfig targets;
};

// The tier name shadow calls are charged to (a tier-scoped budget cap may name it).
inline constexpr const char* kShadowTier = "shadow";

// Shadow evaluation: a sample of the answers of tiers below the reference tier is answered again
// by the reference tier, charged to the tier bucket "shadow", and compared (docs/shadow.md).
struct ShadowConfig {
  double sample = 0.0;                               // share of each tier's answers sampled; 0: off
  std::map<std::string, double> sample_by_category;  // category -> share, instead of `sample`
  std::string reference_tier;                        // empty: the last tier
  // A tier whose measured agreement in a category is surely below this (the 95% upper bound, over
  // at least min_comparisons comparisons) passes that category's tickets up; 0: off.
  double quality_floor = 0.0;
  int min_comparisons = 30;

  double sampleFor(const std::string& category) const {
    auto it = sample_by_category.find(category);
    return it == sample_by_category.end() ? sample : it->second;
  }
  bool enabled() const {
    if (sample > 0) return true;
    for (const auto& [c, s] : sample_by_category)
      if (s > 0) return true;
    return false;
  }
};

// Helpdesk feedback (docs/feedback.md): the tier roles keep what each final answer was, and the
// feedback role turns corrections, resolutions and reopenings into training labels.
struct FeedbackConfig {
  bool enabled = false;
  // Keep the ticket's text with the answer, so a corrected category can retrain the category
  // model. Off: the text stays only in Kafka, and only the escalation verifier learns.
  bool keep_text = false;
  int retention_days = 30;  // how long an answer waits for its feedback
};

enum class BudgetPolicy { kDowngrade, kDefer, kHuman };
enum class BudgetScope { kGlobal, kTenant, kTier };

struct BudgetCap {
  BudgetScope scope = BudgetScope::kGlobal;
  std::string tenant;  // scope kTenant
  std::string tier;    // scope kTier
  std::optional<MicroUsd> daily_micro_usd;
  std::optional<MicroUsd> monthly_micro_usd;
};

struct BudgetsConfig {
  BudgetPolicy on_exhausted = BudgetPolicy::kDowngrade;
  int reservation_ttl_s = 600;
  std::vector<BudgetCap> caps;
};

enum class EmbedderKind { kHashing, kOpenAi };

struct CacheConfig {
  bool enabled = true;
  double similarity_threshold = 0.93;
  bool same_category = true;
  std::int64_t ttl_s = 604800;
  // A ticket whose near-duplicate is still being answered waits up to this long for that answer
  // (in-flight coalescing) instead of calling a model; 0 turns it off.
  std::int64_t coalesce_wait_ms = 20000;
  EmbedderKind embedder = EmbedderKind::kHashing;
  int dimension = 512;
  std::string embedder_provider;         // kOpenAi
  std::string embedder_model;            // kOpenAi
  bool embedder_send_dimensions = true;  // kOpenAi: ask the endpoint for `dimension` dimensions
  int lsh_bands = 20;
  int lsh_rows_per_band = 14;
};

// Where result writers send each ticket update (results.sinks).
enum class SinkKind { kTopic, kWebhook, kJira, kServiceNow };

struct SinkConfig {
  std::string name;
  SinkKind kind = SinkKind::kTopic;
  // Source systems (ticket.source.system) whose tickets this sink receives; empty: every ticket.
  // Jira and ServiceNow sinks default to their own system.
  std::vector<std::string> sources;
  std::string url;         // webhook: the endpoint; jira / servicenow: the site or instance URL
  std::string username;    // jira: the account e-mail; servicenow: the user
  std::string secret_env;  // webhook: HMAC key; jira: API token; servicenow: password (a variable's name)
  std::string label_prefix = "ticketflow-";              // jira labels
  std::map<std::string, std::string> assignment_groups;  // servicenow: category -> group
  std::map<std::string, std::string> headers;            // webhook: extra request headers
  int timeout_ms = 10000;

  bool serves(const std::string& source_system) const;
};

struct ResultsConfig {
  // How long the "already written" marker of (ticket id, revision, sink) is kept in Redis.
  std::int64_t idempotency_ttl_s = 2'592'000;
  // The updates topic exactly once, even across a crash between an update's acknowledgement and
  // its marker: the topic write is marked pending first, placed on a partition known in advance,
  // and a redelivery that finds it pending reads the partition for it before producing again
  // (docs/pipeline.md). Off: a redelivery may repeat an update (same idempotency-key header).
  bool exactly_once = false;
  std::vector<SinkConfig> sinks = updatesTopicOnly();

  static std::vector<SinkConfig> updatesTopicOnly() {
    SinkConfig topic;
    topic.name = "updates";
    return {topic};
  }
};

// HTTP(S)_PROXY / NO_PROXY from the environment, for provider and ticket-system calls.
struct ProxyConfig {
  std::string http_proxy;   // e.g. http://proxy.corp:3128
  std::string https_proxy;  // used for https:// URLs
  std::string no_proxy;     // comma-separated hosts or suffixes that bypass the proxy
};

struct ObservabilityConfig {
  int http_port = 9464;
  std::string log_level = "info";
};

struct Config {
  std::string source;      // the file it came from, or "<embedded>"
  std::string config_dir;  // folder that relative paths in the file are resolved against
  KafkaConfig kafka;
  RedisConfig redis;
  StageConfig stage;
  std::vector<ProviderConfig> providers;
  std::vector<ModelConfig> models;
  std::vector<TierConfig> tiers;  // cheapest first
  ClassifierConfig classifier;
  RoutingConfig routing;
  ShadowConfig shadow;
  FeedbackConfig feedback;
  BudgetsConfig budgets;
  CacheConfig cache;
  ResultsConfig results;
  ObservabilityConfig observability;
  ProxyConfig proxy;  // from the environment, not the file

  const ProviderConfig* findProvider(const std::string& name) const;
  const ModelConfig* findModel(const std::string& name) const;
  const TierConfig* findTier(const std::string& name) const;
  // Position of the tier in the cheapest-first order, or -1.
  int tierIndex(const std::string& name) const;
  // A relative path from the file, resolved against config_dir.
  std::string resolvePath(const std::string& path) const;
};

// Environment lookup used for ${NAME} substitution; injectable for tests.
using EnvLookup = std::optional<std::string> (*)(const std::string& name);
std::optional<std::string> processEnv(const std::string& name);

// Loads, substitutes ${ENV}, validates against schemas/config.schema.json and cross-checks
// references (a tier naming a missing model, ...). Throws ConfigError.
Config loadConfig(const std::string& path, EnvLookup env = processEnv);
// The same, from text (for the embedded default and tests); `source` names it in errors.
Config loadConfigText(const std::string& yaml_text, const std::string& source, const std::string& config_dir,
                      EnvLookup env = processEnv);
// The default configuration compiled into the binary (config/ticketflow.yaml).
Config loadEmbeddedConfig(EnvLookup env = processEnv);

// Any YAML document as JSON (YAML 1.2 core types; no ${ENV} substitution), for the smaller
// files beside the configuration (simulator profiles, runbooks). Throws ConfigError on bad YAML.
nlohmann::json parseYamlDocument(const std::string& yaml_text, const std::string& source);
// Every document of a multi-document YAML stream ("---" separated), empty ones skipped.
std::vector<nlohmann::json> parseYamlDocuments(const std::string& yaml_text, const std::string& source);

const char* providerApiName(ProviderApi api);
const char* budgetPolicyName(BudgetPolicy policy);
const char* sinkKindName(SinkKind kind);

}  // namespace ticketflow
