#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "ticketflow/config/config.hpp"
#include "ticketflow/core/embedded.hpp"
#include "ticketflow/core/json_fields.hpp"
#include "ticketflow/core/utf8.hpp"
#include "ticketflow/schema/validator.hpp"
#include "yaml_bounds.hpp"
#include "yaml_to_json.hpp"

namespace ticketflow {
namespace {

using nlohmann::json;

std::string describeError(const std::string& file, const std::string& field, const std::string& reason, int line) {
  std::string out = file;
  if (line > 0) out += ":" + std::to_string(line);
  out += ": ";
  if (!field.empty()) out += "field '" + field + "': ";
  return out + reason;
}

MicroUsd usdToMicro(const json& v, const std::string& file, const std::string& pointer, const YamlToJson& lines) {
  const double usd = v.get<double>();
  const double micro = usd * static_cast<double>(kMicroUsdPerUsd);
  const double rounded = std::round(micro);
  if (std::fabs(micro - rounded) > 1e-6 * std::max(1.0, std::fabs(micro)))
    throw ConfigError(file, schema::pointerToFieldPath(pointer), "at most 6 decimals (micro-dollars), got " + v.dump(),
                      lines.lineOf(pointer));
  return static_cast<MicroUsd>(rounded);
}

ProviderApi parseApi(const std::string& s) {
  return s == "anthropic" ? ProviderApi::kAnthropic : ProviderApi::kOpenAi;
}

BudgetPolicy parsePolicy(const std::string& s) {
  if (s == "defer") return BudgetPolicy::kDefer;
  if (s == "human") return BudgetPolicy::kHuman;
  return BudgetPolicy::kDowngrade;
}

SinkKind parseSinkKind(const std::string& s) {
  if (s == "webhook") return SinkKind::kWebhook;
  if (s == "jira") return SinkKind::kJira;
  if (s == "servicenow") return SinkKind::kServiceNow;
  return SinkKind::kTopic;
}

BudgetScope parseScope(const std::string& s) {
  if (s == "tenant") return BudgetScope::kTenant;
  if (s == "tier") return BudgetScope::kTier;
  return BudgetScope::kGlobal;
}

// Builds the typed struct from schema-valid JSON.
Config buildConfig(const json& doc, const std::string& file, const YamlToJson& lines) {
  Config c;
  const json& k = doc["kafka"];
  c.kafka.bootstrap_servers = k["bootstrap_servers"].get<std::string>();
  readIfPresent(k, "client_id", c.kafka.client_id);
  readIfPresent(k, "partitions", c.kafka.partitions);
  readIfPresent(k, "max_message_bytes", c.kafka.max_message_bytes);
  const json& t = k["topics"];
  c.kafka.topics = {t["inbound"], t["tier_prefix"], t["results"], t["updates"], t["dlq"]};
  readIfPresent(t, "deferred", c.kafka.topics.deferred);
  readIfPresent(t, "shadow", c.kafka.topics.shadow);
  readIfPresent(t, "feedback", c.kafka.topics.feedback);
  const json& g = k["consumer_groups"];
  c.kafka.consumer_groups = {g["intake"], g["tier_prefix"], g["results"]};
  readIfPresent(g, "deferred", c.kafka.consumer_groups.deferred);
  readIfPresent(g, "shadow", c.kafka.consumer_groups.shadow);
  readIfPresent(g, "feedback", c.kafka.consumer_groups.feedback);
  if (auto it = k.find("properties"); it != k.end()) {
    for (const auto& [name, value] : it->items())
      c.kafka.properties[name] = value.is_string() ? value.get<std::string>() : value.dump();
  }

  const json& r = doc["redis"];
  c.redis.url = r["url"].get<std::string>();
  readIfPresent(r, "password", c.redis.password);
  readIfPresent(r, "pool_size", c.redis.pool_size);
  readIfPresent(r, "key_prefix", c.redis.key_prefix);
  readIfPresent(r, "connect_timeout_ms", c.redis.connect_timeout_ms);
  readIfPresent(r, "command_timeout_ms", c.redis.command_timeout_ms);
  readIfPresent(r, "sentinel_password", c.redis.sentinel_password);
  readIfPresent(r, "min_replica_acks", c.redis.min_replica_acks);
  readIfPresent(r, "replica_ack_timeout_ms", c.redis.replica_ack_timeout_ms);
  if (auto it = r.find("tls"); it != r.end()) {
    readIfPresent(*it, "ca_file", c.redis.tls.ca_file);
    readIfPresent(*it, "cert_file", c.redis.tls.cert_file);
    readIfPresent(*it, "key_file", c.redis.tls.key_file);
    readIfPresent(*it, "server_name", c.redis.tls.server_name);
  }

  if (auto it = doc.find("stage"); it != doc.end()) {
    readIfPresent(*it, "max_in_flight", c.stage.max_in_flight);
    readIfPresent(*it, "worker_threads", c.stage.worker_threads);
    readIfPresent(*it, "max_attempts", c.stage.max_attempts);
    readIfPresent(*it, "retry_backoff_initial_ms", c.stage.retry_backoff_initial_ms);
    readIfPresent(*it, "retry_backoff_max_ms", c.stage.retry_backoff_max_ms);
    readIfPresent(*it, "commit_interval_ms", c.stage.commit_interval_ms);
    readIfPresent(*it, "drain_deadline_ms", c.stage.drain_deadline_ms);
    readIfPresent(*it, "outage_probe_max_ms", c.stage.outage_probe_max_ms);
    if (auto m = it->find("max_hold_s"); m != it->end())
      c.stage.max_hold_s = m->get<std::map<std::string, std::int64_t>>();
  }

  for (const auto& p : doc["providers"]) {
    ProviderConfig pc;
    pc.name = p["name"];
    pc.api = parseApi(p["api"]);
    pc.base_url = p["base_url"];
    readIfPresent(p, "api_key_env", pc.api_key_env);
    readIfPresent(p, "connect_timeout_ms", pc.connect_timeout_ms);
    readIfPresent(p, "read_timeout_ms", pc.read_timeout_ms);
    readIfPresent(p, "total_timeout_ms", pc.total_timeout_ms);
    readIfPresent(p, "max_connections", pc.max_connections);
    if (auto h = p.find("headers"); h != p.end()) pc.headers = h->get<std::map<std::string, std::string>>();
    c.providers.push_back(std::move(pc));
  }

  for (std::size_t i = 0; i < doc["models"].size(); ++i) {
    const json& m = doc["models"][i];
    const std::string at = "/models/" + std::to_string(i) + "/";
    ModelConfig mc;
    mc.name = m["name"];
    mc.provider = m["provider"];
    mc.model_id = m["model_id"];
    mc.input_micro_usd_per_mtok = usdToMicro(m["input_usd_per_mtok"], file, at + "input_usd_per_mtok", lines);
    mc.output_micro_usd_per_mtok = usdToMicro(m["output_usd_per_mtok"], file, at + "output_usd_per_mtok", lines);
    readIfPresent(m, "context_window", mc.context_window);
    readIfPresent(m, "max_output_tokens", mc.max_output_tokens);
    readIfPresent(m, "max_ticket_tokens", mc.max_ticket_tokens);
    if (auto l = m.find("limits"); l != m.end()) {
      readIfPresent(*l, "rpm", mc.limits.rpm);
      readIfPresent(*l, "tpm", mc.limits.tpm);
      readIfPresent(*l, "max_concurrency", mc.limits.max_concurrency);
    }
    c.models.push_back(std::move(mc));
  }

  for (const auto& t2 : doc["tiers"]) {
    TierConfig tc;
    tc.name = t2["name"];
    tc.models = t2["models"].get<std::vector<std::string>>();
    readIfPresent(t2, "degraded_fallbacks", tc.degraded_fallbacks);
    readIfPresent(t2, "escalate_below_confidence", tc.escalate_below_confidence);
    readIfPresent(t2, "escalate_below_agreement", tc.escalate_below_agreement);
    readIfPresent(t2, "max_escalation_share", tc.max_escalation_share);
    c.tiers.push_back(std::move(tc));
  }

  if (auto it = doc.find("classifier"); it != doc.end()) {
    readIfPresent(*it, "category_model", c.classifier.category_model);
    readIfPresent(*it, "escalation_model", c.classifier.escalation_model);
    if (auto d = it->find("difficulty"); d != it->end()) {
      readIfPresent(*d, "easy_below", c.classifier.difficulty.easy_below);
      readIfPresent(*d, "hard_from", c.classifier.difficulty.hard_from);
      if (auto w = d->find("weights"); w != d->end())
        c.classifier.difficulty.weights = w->get<std::map<std::string, double>>();
    }
  }

  if (auto it = doc.find("routing"); it != doc.end()) {
    if (auto d = it->find("difficulty_tiers"); d != it->end()) {
      c.routing.easy_tier = (*d)["easy"];
      c.routing.medium_tier = (*d)["medium"];
      c.routing.hard_tier = (*d)["hard"];
    }
    readIfPresent(*it, "low_confidence_below", c.routing.low_confidence_below);
    if (auto m = it->find("min_tier_by_category"); m != it->end())
      c.routing.min_tier_by_category = m->get<std::map<std::string, std::string>>();
    if (auto m = it->find("tenant_tiers"); m != it->end())
      c.routing.tenant_tiers = m->get<std::map<std::string, std::string>>();
    if (auto targets = it->find("targets"); targets != it->end()) {
      if (auto m = targets->find("shares"); m != targets->end())
        c.routing.targets.shares = m->get<std::map<std::string, double>>();
      readIfPresent(*targets, "tolerance", c.routing.targets.tolerance);
      readIfPresent(*targets, "window", c.routing.targets.window);
      readIfPresent(*targets, "gain", c.routing.targets.gain);
    }
  }
  if (c.routing.easy_tier.empty()) c.routing.easy_tier = c.tiers.front().name;
  if (c.routing.medium_tier.empty()) c.routing.medium_tier = c.tiers[c.tiers.size() / 2].name;
  if (c.routing.hard_tier.empty()) c.routing.hard_tier = c.tiers.back().name;

  if (auto it = doc.find("feedback"); it != doc.end()) {
    readIfPresent(*it, "enabled", c.feedback.enabled);
    readIfPresent(*it, "keep_text", c.feedback.keep_text);
    readIfPresent(*it, "retention_days", c.feedback.retention_days);
  }

  if (auto it = doc.find("shadow"); it != doc.end()) {
    readIfPresent(*it, "sample", c.shadow.sample);
    if (auto m = it->find("sample_by_category"); m != it->end())
      c.shadow.sample_by_category = m->get<std::map<std::string, double>>();
    readIfPresent(*it, "reference_tier", c.shadow.reference_tier);
    readIfPresent(*it, "quality_floor", c.shadow.quality_floor);
    readIfPresent(*it, "min_comparisons", c.shadow.min_comparisons);
  }
  if (c.shadow.reference_tier.empty()) c.shadow.reference_tier = c.tiers.back().name;

  if (auto it = doc.find("budgets"); it != doc.end()) {
    if (auto p = it->find("on_exhausted"); p != it->end()) c.budgets.on_exhausted = parsePolicy(*p);
    readIfPresent(*it, "reservation_ttl_s", c.budgets.reservation_ttl_s);
    if (auto caps = it->find("caps"); caps != it->end()) {
      for (std::size_t i = 0; i < caps->size(); ++i) {
        const json& cap = (*caps)[i];
        const std::string at = "/budgets/caps/" + std::to_string(i) + "/";
        BudgetCap bc;
        bc.scope = parseScope(cap["scope"]);
        readIfPresent(cap, "tenant", bc.tenant);
        readIfPresent(cap, "tier", bc.tier);
        if (cap.contains("daily_usd")) bc.daily_micro_usd = usdToMicro(cap["daily_usd"], file, at + "daily_usd", lines);
        if (cap.contains("monthly_usd"))
          bc.monthly_micro_usd = usdToMicro(cap["monthly_usd"], file, at + "monthly_usd", lines);
        c.budgets.caps.push_back(std::move(bc));
      }
    }
  }

  if (auto it = doc.find("cache"); it != doc.end()) {
    readIfPresent(*it, "enabled", c.cache.enabled);
    readIfPresent(*it, "similarity_threshold", c.cache.similarity_threshold);
    readIfPresent(*it, "same_category", c.cache.same_category);
    readIfPresent(*it, "ttl_s", c.cache.ttl_s);
    readIfPresent(*it, "coalesce_wait_ms", c.cache.coalesce_wait_ms);
    if (auto e = it->find("embedder"); e != it->end()) {
      c.cache.embedder = (*e)["kind"] == "openai" ? EmbedderKind::kOpenAi : EmbedderKind::kHashing;
      readIfPresent(*e, "dimension", c.cache.dimension);
      readIfPresent(*e, "provider", c.cache.embedder_provider);
      readIfPresent(*e, "model", c.cache.embedder_model);
      readIfPresent(*e, "send_dimensions", c.cache.embedder_send_dimensions);
    }
    if (auto l = it->find("lsh"); l != it->end()) {
      readIfPresent(*l, "bands", c.cache.lsh_bands);
      readIfPresent(*l, "rows_per_band", c.cache.lsh_rows_per_band);
    }
  }

  if (auto it = doc.find("results"); it != doc.end()) {
    readIfPresent(*it, "idempotency_ttl_s", c.results.idempotency_ttl_s);
    readIfPresent(*it, "exactly_once", c.results.exactly_once);
    if (auto sinks = it->find("sinks"); sinks != it->end()) {
      c.results.sinks.clear();
      for (const auto& entry : *sinks) {
        SinkConfig sc;
        sc.name = entry["name"];
        sc.kind = parseSinkKind(entry["kind"]);
        if (sc.kind == SinkKind::kJira) sc.sources = {"jira"};
        if (sc.kind == SinkKind::kServiceNow) sc.sources = {"servicenow"};
        readIfPresent(entry, "sources", sc.sources);
        readIfPresent(entry, "url", sc.url);
        readIfPresent(entry, "username", sc.username);
        readIfPresent(entry, "secret_env", sc.secret_env);
        readIfPresent(entry, "label_prefix", sc.label_prefix);
        readIfPresent(entry, "timeout_ms", sc.timeout_ms);
        if (auto m = entry.find("assignment_groups"); m != entry.end())
          sc.assignment_groups = m->get<std::map<std::string, std::string>>();
        if (auto m = entry.find("headers"); m != entry.end()) sc.headers = m->get<std::map<std::string, std::string>>();
        c.results.sinks.push_back(std::move(sc));
      }
    }
  }

  if (auto it = doc.find("observability"); it != doc.end()) {
    readIfPresent(*it, "http_port", c.observability.http_port);
    readIfPresent(*it, "log_level", c.observability.log_level);
  }
  return c;
}

// Checks that the schema cannot express: names unique, references resolve, ranges ordered.
void crossCheck(const Config& c, const std::string& file, const YamlToJson& lines) {
  auto fail = [&](const std::string& pointer, const std::string& reason) {
    throw ConfigError(file, schema::pointerToFieldPath(pointer), reason, lines.lineOf(pointer));
  };
  auto checkUnique = [&](const auto& items, const std::string& list) {
    std::set<std::string> seen;
    for (std::size_t i = 0; i < items.size(); ++i) {
      if (!seen.insert(items[i].name).second)
        fail("/" + list + "/" + std::to_string(i) + "/name", "duplicate name '" + items[i].name + "'");
    }
  };
  checkUnique(c.providers, "providers");
  checkUnique(c.models, "models");
  checkUnique(c.tiers, "tiers");

  const auto& tls = c.redis.tls;
  const bool tls_configured =
      !tls.ca_file.empty() || !tls.cert_file.empty() || !tls.key_file.empty() || !tls.server_name.empty();
  if (tls_configured && c.redis.url.rfind("rediss", 0) != 0)
    fail("/redis/tls", "TLS settings need a rediss:// (or rediss+sentinel://) URL; this one is plain text");
  if (tls.cert_file.empty() != tls.key_file.empty())
    fail(tls.cert_file.empty() ? "/redis/tls/key_file" : "/redis/tls/cert_file",
         "a client certificate needs both cert_file and key_file");
  // The files themselves are read at start-up (they may exist only where the roles run, e.g. a
  // mounted Secret); an unreadable one stops it, naming the file.

  for (std::size_t i = 0; i < c.models.size(); ++i) {
    if (!c.findProvider(c.models[i].provider))
      fail("/models/" + std::to_string(i) + "/provider",
           "unknown provider '" + c.models[i].provider + "' (not in providers)");
  }
  for (std::size_t i = 0; i < c.tiers.size(); ++i) {
    const auto& tier = c.tiers[i];
    for (std::size_t j = 0; j < tier.models.size(); ++j) {
      if (!c.findModel(tier.models[j]))
        fail("/tiers/" + std::to_string(i) + "/models/" + std::to_string(j),
             "unknown model '" + tier.models[j] + "' (not in models)");
    }
    for (std::size_t j = 0; j < tier.degraded_fallbacks.size(); ++j) {
      const auto& m = tier.degraded_fallbacks[j];
      if (std::find(tier.models.begin(), tier.models.end(), m) == tier.models.end())
        fail("/tiers/" + std::to_string(i) + "/degraded_fallbacks/" + std::to_string(j),
             "'" + m + "' is not one of this tier's models");
      if (!tier.models.empty() && tier.models.front() == m)
        fail("/tiers/" + std::to_string(i) + "/degraded_fallbacks/" + std::to_string(j),
             "the primary model cannot be a degraded fallback");
    }
  }
  auto checkTier = [&](const std::string& tier, const std::string& pointer) {
    if (c.tierIndex(tier) < 0) fail(pointer, "unknown tier '" + tier + "' (not in tiers)");
  };
  checkTier(c.routing.easy_tier, "/routing/difficulty_tiers/easy");
  checkTier(c.routing.medium_tier, "/routing/difficulty_tiers/medium");
  checkTier(c.routing.hard_tier, "/routing/difficulty_tiers/hard");
  for (const auto& [category, tier] : c.routing.min_tier_by_category)
    checkTier(tier, "/routing/min_tier_by_category/" + category);
  for (const auto& [tenant, tier] : c.routing.tenant_tiers) checkTier(tier, "/routing/tenant_tiers/" + tenant);
  if (const auto& targets = c.routing.targets; targets.enabled()) {
    double sum = 0;
    for (const auto& [tier, share] : targets.shares) {
      checkTier(tier, "/routing/targets/shares/" + tier);
      sum += share;
    }
    if (std::abs(sum - 1.0) > 0.01)
      fail("/routing/targets/shares", "the shares add up to " + std::to_string(sum) + "; they must add up to 1");
    if (c.routing.easy_tier == c.routing.hard_tier)
      fail("/routing/targets", "needs different easy and hard tiers: the thresholds between them are what it moves");
    for (const auto& [tier, share] : targets.shares)
      if (tier != c.routing.easy_tier && tier != c.routing.medium_tier && tier != c.routing.hard_tier)
        fail("/routing/targets/shares/" + tier,
             "'" + tier + "' is not one of routing.difficulty_tiers: no threshold sends tickets there");
  }
  checkTier(c.shadow.reference_tier, "/shadow/reference_tier");
  if (c.shadow.quality_floor > 0 && !c.shadow.enabled())
    fail("/shadow/quality_floor",
         "needs shadow.sample (or sample_by_category) above 0: the floor acts on what shadow evaluation measures");
  for (std::size_t i = 0; i < c.tiers.size(); ++i)
    if (c.tiers[i].name == kShadowTier)
      fail("/tiers/" + std::to_string(i) + "/name", "'shadow' is reserved for shadow evaluation's budget bucket");

  for (std::size_t i = 0; i < c.budgets.caps.size(); ++i) {
    const auto& cap = c.budgets.caps[i];
    const std::string at = "/budgets/caps/" + std::to_string(i);
    if (cap.scope == BudgetScope::kTenant && cap.tenant.empty()) fail(at, "scope tenant needs a 'tenant'");
    if (cap.scope == BudgetScope::kTier) {
      if (cap.tier.empty()) fail(at, "scope tier needs a 'tier'");
      if (cap.tier != kShadowTier) checkTier(cap.tier, at + "/tier");
    }
    if (cap.scope != BudgetScope::kTier && !cap.tier.empty())
      fail(at + "/tier", "only a cap with scope tier names a tier");
    if (cap.scope != BudgetScope::kTenant && !cap.tenant.empty())
      fail(at + "/tenant", "only a cap with scope tenant names a tenant");
  }
  if (c.stage.retry_backoff_max_ms < c.stage.retry_backoff_initial_ms)
    fail("/stage/retry_backoff_max_ms", "must be >= retry_backoff_initial_ms");
  if (c.classifier.difficulty.easy_below > c.classifier.difficulty.hard_from)
    fail("/classifier/difficulty/easy_below", "must be <= hard_from");
  if (c.cache.embedder == EmbedderKind::kOpenAi) {
    if (c.cache.embedder_provider.empty() || !c.findProvider(c.cache.embedder_provider))
      fail("/cache/embedder/provider", "kind openai needs the name of a configured provider");
    if (c.cache.embedder_model.empty()) fail("/cache/embedder/model", "kind openai needs an embedding model id");
  }
  if (c.cache.lsh_bands * c.cache.lsh_rows_per_band > c.cache.dimension)
    fail("/cache/lsh", "bands x rows_per_band must not exceed the embedder dimension");

  checkUnique(c.results.sinks, "results/sinks");
  for (std::size_t i = 0; i < c.results.sinks.size(); ++i) {
    const SinkConfig& sink = c.results.sinks[i];
    const std::string at = "/results/sinks/" + std::to_string(i);
    const bool http = sink.kind != SinkKind::kTopic;
    if (http && sink.url.empty()) fail(at, std::string("a ") + sinkKindName(sink.kind) + " sink needs a 'url'");
    if (!http && !sink.url.empty()) fail(at + "/url", "a topic sink writes to kafka.topics.updates; it takes no url");
    if ((sink.kind == SinkKind::kJira || sink.kind == SinkKind::kServiceNow) && sink.username.empty())
      fail(at, std::string("a ") + sinkKindName(sink.kind) + " sink needs a 'username'");
    if ((sink.kind == SinkKind::kJira || sink.kind == SinkKind::kServiceNow) && sink.secret_env.empty())
      fail(at, std::string("a ") + sinkKindName(sink.kind) +
                   " sink needs 'secret_env' (the variable holding its credential)");
  }
}

}  // namespace

ConfigError::ConfigError(std::string file, std::string field, std::string reason, int line)
    : std::runtime_error(describeError(file, field, reason, line)),
      file_(std::move(file)),
      field_(std::move(field)),
      reason_(std::move(reason)) {}

MicroUsd ModelConfig::costMicroUsd(std::int64_t input_tokens, std::int64_t output_tokens) const {
  // price is micro-dollars per million tokens: cost = tokens * price / 1e6, rounded up.
  const __int128 total = static_cast<__int128>(input_tokens) * input_micro_usd_per_mtok +
                         static_cast<__int128>(output_tokens) * output_micro_usd_per_mtok;
  return static_cast<MicroUsd>((total + 999'999) / 1'000'000);
}

const ProviderConfig* Config::findProvider(const std::string& name) const {
  for (const auto& p : providers)
    if (p.name == name) return &p;
  return nullptr;
}
const ModelConfig* Config::findModel(const std::string& name) const {
  for (const auto& m : models)
    if (m.name == name) return &m;
  return nullptr;
}
const TierConfig* Config::findTier(const std::string& name) const {
  for (const auto& t : tiers)
    if (t.name == name) return &t;
  return nullptr;
}
int Config::tierIndex(const std::string& name) const {
  for (std::size_t i = 0; i < tiers.size(); ++i)
    if (tiers[i].name == name) return static_cast<int>(i);
  return -1;
}
std::string Config::resolvePath(const std::string& path) const {
  if (path.empty() || path.front() == '/') return path;
  return (std::filesystem::path(config_dir) / path).lexically_normal().string();
}

std::optional<std::string> processEnv(const std::string& name) {
  const char* v = std::getenv(name.c_str());  // the one place our code reads the environment
  if (!v) return std::nullopt;
  return std::string(v);
}

namespace {

// The one document of `yaml_text` (an empty text is a null document).
YAML::Node loadOneDocument(const std::string& yaml_text, const std::string& source) {
  auto documents = loadBoundedYaml(yaml_text, source);
  if (documents.size() > 1) throw ConfigError(source, "", "more than one YAML document (a second '---')");
  return documents.empty() ? YAML::Node() : documents.front();
}

}  // namespace

Config loadConfigText(const std::string& yaml_text, const std::string& source, const std::string& config_dir,
                      EnvLookup env) {
  const YAML::Node root = loadOneDocument(yaml_text, source);
  if (!root.IsMap()) throw ConfigError(source, "", "the top level must be a mapping of sections");
  YamlToJson converter(source, env);
  const json doc = converter.convert(root);
  const auto errors = schema::SchemaRegistry::builtin().validate("config.schema.json", doc, 1);
  if (!errors.empty()) {
    const auto& e = errors.front();
    throw ConfigError(source, schema::pointerToFieldPath(e.path), e.reason, converter.lineOf(e.path));
  }
  Config config;
  try {
    config = buildConfig(doc, source, converter);
  } catch (const std::out_of_range& e) {  // a number the schema's bounds let through but a type cannot hold
    throw ConfigError(source, "", e.what());
  }
  config.source = source;
  config.config_dir = config_dir;
  for (std::string* path : {&config.redis.tls.ca_file, &config.redis.tls.cert_file, &config.redis.tls.key_file})
    *path = config.resolvePath(*path);
  auto firstOf = [&](const char* upper, const char* lower) {
    auto v = env(upper);
    if (!v || v->empty()) v = env(lower);
    return v.value_or("");
  };
  config.proxy = {firstOf("HTTP_PROXY", "http_proxy"), firstOf("HTTPS_PROXY", "https_proxy"),
                  firstOf("NO_PROXY", "no_proxy")};
  crossCheck(config, source, converter);
  return config;
}

nlohmann::json parseYamlDocument(const std::string& yaml_text, const std::string& source) {
  YamlToJson converter(source, nullptr);
  return converter.convert(loadOneDocument(yaml_text, source));
}

std::vector<nlohmann::json> parseYamlDocuments(const std::string& yaml_text, const std::string& source) {
  const std::vector<YAML::Node> nodes = loadBoundedYaml(yaml_text, source);
  std::vector<nlohmann::json> out;
  for (const auto& node : nodes) {
    if (node.IsNull()) continue;
    YamlToJson converter(source, nullptr);
    out.push_back(converter.convert(node));
  }
  return out;
}

Config loadConfig(const std::string& path, EnvLookup env) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path, "", "cannot read the file (does it exist?)");
  // Read no more than the bound and one byte: enough to refuse /dev/zero without reading it all.
  std::string text(YamlLimits{}.max_bytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  const auto dir = std::filesystem::absolute(path).parent_path().string();
  return loadConfigText(text, path, dir, env);
}

Config loadEmbeddedConfig(EnvLookup env) {
  const auto text = embeddedFile("config/ticketflow.yaml");
  if (!text) throw ConfigError("<embedded>", "", "the binary was built without config/ticketflow.yaml");
  // Relative paths (the classifier model) resolve against the installed config folder.
  const std::string dir = env("TICKETFLOW_CONFIG_DIR").value_or(TICKETFLOW_DEFAULT_CONFIG_DIR);
  return loadConfigText(std::string(*text), "<embedded config/ticketflow.yaml>", dir, env);
}

const char* providerApiName(ProviderApi api) {
  return api == ProviderApi::kAnthropic ? "anthropic" : "openai";
}

const char* sinkKindName(SinkKind kind) {
  switch (kind) {
    case SinkKind::kTopic:
      return "topic";
    case SinkKind::kWebhook:
      return "webhook";
    case SinkKind::kJira:
      return "jira";
    case SinkKind::kServiceNow:
      return "servicenow";
  }
  return "unknown";
}

bool SinkConfig::serves(const std::string& source_system) const {
  return sources.empty() || std::find(sources.begin(), sources.end(), source_system) != sources.end();
}

const char* budgetPolicyName(BudgetPolicy policy) {
  switch (policy) {
    case BudgetPolicy::kDowngrade:
      return "downgrade";
    case BudgetPolicy::kDefer:
      return "defer";
    case BudgetPolicy::kHuman:
      return "human";
  }
  return "unknown";
}

}  // namespace ticketflow
