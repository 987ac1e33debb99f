// budget show|set|reset, cache stats|purge|eval, eval routing, train escalation, bench
// cache|ledger: the Redis components' commands.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "command.hpp"
#include "pipeline/agreement_report.hpp"
#include "ticketflow/classify/category_model.hpp"
#include "ticketflow/classify/escalation_model.hpp"
#include "ticketflow/config/config.hpp"
#include "ticketflow/core/stats.hpp"
#include "ticketflow/redis/agreement_store.hpp"
#include "ticketflow/redis/budget_ledger.hpp"
#include "ticketflow/redis/embedded_server.hpp"
#include "ticketflow/redis/feedback_store.hpp"
#include "ticketflow/redis/pool.hpp"
#include "ticketflow/redis/route_shares.hpp"
#include "ticketflow/redis/semantic_cache.hpp"

namespace ticketflow::app {
namespace {
std::string displayUrl(const std::string& url) {
  return url.find('@') == std::string::npos ? url : "(url with credentials)";
}
}  // namespace

Config loadConfigOption(const cli::ParsedArgs& args) {
  if (auto path = args.find("config")) return loadConfig(*path);
  return loadEmbeddedConfig();
}

std::shared_ptr<redis::RedisPool> connectConfigured(const Config& config) {
  if (auto url = redis::parseRedisUrl(config.redis.url); !url)
    throw std::runtime_error("redis.url: " + url.error().message);
  auto options = redis::RedisPoolOptions::fromConfig(config.redis);
  if (!options) throw std::runtime_error("redis.tls: " + options.error().message);
  auto pool = std::make_shared<redis::RedisPool>(*options);
  auto pong = pool->command({"PING"});
  if (!pong || pong->type == redis::Reply::Type::kError)
    throw std::runtime_error("Redis at " + displayUrl(config.redis.url) + " is not reachable (" +
                             (pong ? pong->str : pong.error().message) +
                             "); start redis-server or set TICKETFLOW_REDIS_URL / redis.url");
  return pool;
}

redis::FeedbackStore openFeedbackStore(const Config& config) {
  return redis::FeedbackStore(connectConfigured(config), config.redis.key_prefix,
                              std::chrono::hours(24) * config.feedback.retention_days);
}

namespace {

using Steady = std::chrono::steady_clock;

std::shared_ptr<redis::RedisPool> connectPrivate(const redis::EmbeddedRedisServer& server, int size) {
  redis::RedisPoolOptions options;
  options.endpoint.port = server.port();
  options.pool_size = size;
  options.command_timeout = std::chrono::seconds(10);
  options.acquire_timeout = std::chrono::seconds(10);
  return std::make_shared<redis::RedisPool>(options);
}

MicroUsd parseUsd(const std::string& text) {
  std::size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || value < 0 || !std::isfinite(value))
    throw cli::UsageError("--usd: expected a non-negative amount in dollars, e.g. 12.50");
  return static_cast<MicroUsd>(std::llround(value * kMicroUsdPerUsd));
}

BudgetScope parseScopeArg(const std::string& s) {
  if (s == "global") return BudgetScope::kGlobal;
  if (s == "tenant") return BudgetScope::kTenant;
  if (s == "tier") return BudgetScope::kTier;
  throw cli::UsageError("--scope: expected global, tenant or tier");
}

redis::BudgetPeriod parsePeriodArg(const std::string& s) {
  if (s == "day") return redis::BudgetPeriod::kDay;
  if (s == "month") return redis::BudgetPeriod::kMonth;
  throw cli::UsageError("--period: expected day or month");
}

std::string scopeNameArg(const cli::ParsedArgs& args, BudgetScope scope) {
  const std::string name = args.find("name").value_or("");
  if (scope != BudgetScope::kGlobal && name.empty()) throw cli::UsageError("--name: scope tenant or tier needs a name");
  if (scope == BudgetScope::kGlobal && !name.empty()) throw cli::UsageError("--name: the global scope has no name");
  return name;
}

redis::BudgetLedger makeLedger(const Config& config) {
  return redis::BudgetLedger(connectConfigured(config), config.budgets, config.redis.key_prefix);
}

int runBudgetShow(const cli::ParsedArgs& args) {
  const Config config = loadConfigOption(args);
  auto ledger = makeLedger(config);
  auto rows = ledger.show();
  if (!rows) throw std::runtime_error(rows.error().message);
  std::cout << std::left << std::setw(8) << "scope" << std::setw(18) << "name" << std::setw(7) << "period"
            << std::setw(12) << "id" << std::right << std::setw(16) << "settled" << std::setw(16) << "reserved"
            << std::setw(16) << "cap" << std::setw(8) << "used"
            << "\n";
  for (const auto& r : *rows) {
    std::ostringstream used;
    if (r.cap && *r.cap > 0)
      used << std::fixed << std::setprecision(1)
           << 100.0 * static_cast<double>(r.settled + r.reserved) / static_cast<double>(*r.cap) << "%";
    else
      used << "-";
    std::cout << std::left << std::setw(8) << r.scope << std::setw(18) << (r.name.empty() ? "-" : r.name)
              << std::setw(7) << r.period << std::setw(12) << r.period_id << std::right << std::setw(16)
              << formatUsdExact(r.settled) << std::setw(16) << formatUsdExact(r.reserved) << std::setw(16)
              << (r.cap ? formatUsdExact(*r.cap) : "none") << std::setw(8) << used.str()
              << (r.uncharged > 0 ? "  uncharged " + formatUsdExact(r.uncharged) : "") << "\n";
  }
  std::cout << "policy when a cap has no room: " << budgetPolicyName(config.budgets.on_exhausted)
            << "; audit stream: " << ledger.auditStreamKey() << "\n";
  if (auto parked = ledger.parked(); parked && !parked->empty()) {
    std::cout << "parked (deferred by a cap; back when its period ends, or `ticketflow budget release`):\n";
    for (const auto& [tenant, p] : *parked)
      std::cout << "  " << std::left << std::setw(18) << tenant << std::right << std::setw(8) << p.tickets
                << " ticket(s)  " << p.reason << "\n";
  }
  if (auto warning = ledger.persistenceWarning(); warning && !warning->empty())
    std::cerr << "warning: " << *warning << "\n";
  return kExitOk;
}

int runBudgetRelease(const cli::ParsedArgs& args) {
  const Config config = loadConfigOption(args);
  auto ledger = makeLedger(config);
  const auto tenant = args.find("tenant");
  if (tenant && tenant->empty()) throw cli::UsageError("--tenant: expected a tenant name");
  if (auto st = ledger.releaseParked(tenant); !st) throw std::runtime_error(st.error().message);
  std::cout << "released the tickets parked so far for " << (tenant ? "tenant " + *tenant : "every tenant")
            << ": they go back to their tiers within a few seconds (a cap still without room parks them again)\n";
  return kExitOk;
}

int runBudgetSet(const cli::ParsedArgs& args) {
  const Config config = loadConfigOption(args);
  const BudgetScope scope = parseScopeArg(args.get("scope"));
  const std::string name = scopeNameArg(args, scope);
  const auto period = parsePeriodArg(args.get("period"));
  if (args.has("usd") == args.has("none")) throw cli::UsageError("give exactly one of --usd AMOUNT or --none");
  const std::optional<MicroUsd> cap =
      args.has("usd") ? std::optional<MicroUsd>(parseUsd(args.get("usd"))) : std::nullopt;
  auto ledger = makeLedger(config);
  if (auto st = ledger.setCap(scope, name, period, cap); !st) throw std::runtime_error(st.error().message);
  std::cout << "cap " << redis::budgetScopeName(scope) << (name.empty() ? "" : ":" + name) << " per "
            << redis::budgetPeriodName(period) << " set to " << (cap ? formatUsdExact(*cap) : "none (uncapped)")
            << " (overrides the configuration until `ticketflow budget reset --cap`)\n";
  return kExitOk;
}

int runBudgetReset(const cli::ParsedArgs& args) {
  const Config config = loadConfigOption(args);
  const auto period = parsePeriodArg(args.get("period"));
  auto ledger = makeLedger(config);
  if (args.has("cap")) {
    const BudgetScope scope = parseScopeArg(args.get("scope"));
    const std::string name = scopeNameArg(args, scope);
    if (auto st = ledger.resetCap(scope, name, period); !st) throw std::runtime_error(st.error().message);
    std::cout << "cap " << redis::budgetScopeName(scope) << (name.empty() ? "" : ":" + name) << " per "
              << redis::budgetPeriodName(period) << " back to the configured value\n";
    return kExitOk;
  }
  std::optional<BudgetScope> scope;
  std::string name;
  if (args.has("scope")) {
    scope = parseScopeArg(args.get("scope"));
    name = scopeNameArg(args, *scope);
  }
  if (auto st = ledger.resetSpend(scope, name, period); !st) throw std::runtime_error(st.error().message);
  std::cout << "spend of the current " << redis::budgetPeriodName(period) << " reset for "
            << (scope ? std::string(redis::budgetScopeName(*scope)) + (name.empty() ? "" : ":" + name) : "every scope")
            << " (outstanding reservations kept)\n";
  return kExitOk;
}

// Stats and purge embed no text, so they need no embeddings endpoint (nor its API key).
std::shared_ptr<const redis::Embedder> statsOnlyEmbedder(const Config& config) {
  return std::make_shared<redis::HashingEmbedder>(config.cache.dimension);
}

std::string formatTime(std::chrono::system_clock::time_point t) {
  return t.time_since_epoch().count() == 0 ? "-" : formatRfc3339(t);
}

int runCacheStats(const cli::ParsedArgs& args) {
  const Config config = loadConfigOption(args);
  redis::SemanticCache cache(connectConfigured(config), config.cache, config.redis.key_prefix,
                             statsOnlyEmbedder(config));
  auto stats = cache.stats();
  if (!stats) throw std::runtime_error(stats.error().message);
  std::int64_t total = 0;
  std::cout << std::left << std::setw(24) << "tenant" << std::right << std::setw(10) << "entries"
            << "  " << std::setw(26) << "oldest"
            << "  " << std::setw(26) << "newest"
            << "\n";
  for (const auto& t : stats->tenants) {
    total += t.entries;
    std::cout << std::left << std::setw(24) << t.tenant << std::right << std::setw(10) << t.entries << "  "
              << std::setw(26) << formatTime(t.oldest) << "  " << std::setw(26) << formatTime(t.newest) << "\n";
  }
  std::cout << "total entries: " << total << "; Redis used memory: " << stats->used_memory << "; threshold "
            << config.cache.similarity_threshold << ", ttl " << config.cache.ttl_s << " s\n";
  return kExitOk;
}

int runCachePurge(const cli::ParsedArgs& args) {
  const Config config = loadConfigOption(args);
  redis::CachePurgeFilter filter;
  filter.tenant = args.find("tenant");
  filter.category = args.find("category");
  if (args.has("older-than")) filter.older_than = std::chrono::seconds(args.getInt("older-than", 0, 1LL << 40));
  if (!filter.tenant && !filter.category && !filter.older_than && !args.has("all"))
    throw cli::UsageError("say what to purge: --tenant, --category, --older-than, or --all");
  redis::SemanticCache cache(connectConfigured(config), config.cache, config.redis.key_prefix,
                             statsOnlyEmbedder(config));
  auto purged = cache.purge(filter);
  if (!purged) throw std::runtime_error(purged.error().message);
  std::cout << "purged " << *purged << " cache entries\n";
  return kExitOk;
}

struct LabelledTicket {
  std::string text;
  std::string label;
};

std::vector<LabelledTicket> readLabelled(const std::string& path, const std::string& text_col,
                                         const std::string& label_col) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open");
  std::vector<LabelledTicket> out;
  std::size_t line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object() || !j.contains(text_col) || !j.contains(label_col) || !j[text_col].is_string() ||
        !j[label_col].is_string())
      throw std::runtime_error(path + ":" + std::to_string(line_no) + ": expected a JSON object with string fields '" +
                               text_col + "' and '" + label_col + "'");
    out.push_back({j[text_col].get<std::string>(), j[label_col].get<std::string>()});
  }
  return out;
}

std::vector<double> parseThresholds(const std::string& text) {
  std::vector<double> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    try {
      out.push_back(std::stod(item));
    } catch (const std::exception&) {
      throw cli::UsageError("--thresholds: expected comma-separated numbers, e.g. 0.85,0.9,0.95");
    }
  }
  return out;
}

// key=value,... over HashingEmbedderOptions, to compare embedder variants with `cache eval`.
redis::HashingEmbedderOptions parseEmbedderOptions(const std::string& text) {
  redis::HashingEmbedderOptions o;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    const auto eq = item.find('=');
    const std::string key = item.substr(0, eq);
    double value = 0;
    try {
      value = std::stod(eq == std::string::npos ? "" : item.substr(eq + 1));
    } catch (const std::exception&) {
      throw cli::UsageError("--embedder-options: expected key=number, got '" + item + "'");
    }
    if (key == "word")
      o.word_weight = value;
    else if (key == "bigram")
      o.bigram_weight = value;
    else if (key == "char")
      o.char_weight = value;
    else if (key == "boilerplate")
      o.boilerplate_factor = value;
    else if (key == "char_min")
      o.char_min = static_cast<int>(value);
    else if (key == "char_max")
      o.char_max = static_cast<int>(value);
    else if (key == "sublinear")
      o.sublinear_tf = value != 0;
    else if (key == "normalise_groups")
      o.normalise_groups = value != 0;
    else
      throw cli::UsageError("--embedder-options: unknown key '" + key +
                            "' (word, bigram, char, boilerplate, char_min, char_max, sublinear, normalise_groups)");
  }
  return o;
}

// Replays the stream in order: look up each ticket (nearest entry of any category), then insert
// it. One pass serves every threshold: the cache content does not depend on the threshold.
int runCacheEval(const cli::ParsedArgs& args) {
  Config config = loadConfigOption(args);
  const auto tickets = readLabelled(args.get("data"), args.get("text-col"), args.get("label-col"));
  std::vector<double> thresholds;
  if (args.has("thresholds")) {
    thresholds = parseThresholds(args.get("thresholds"));
  } else {
    for (int t = 80; t <= 99; ++t) thresholds.push_back(t / 100.0);
  }
  if (args.has("dimension")) config.cache.dimension = static_cast<int>(args.getInt("dimension", 16, 65536));
  const bool in_memory = args.has("in-memory");
  std::shared_ptr<const redis::Embedder> embedder;
  if (auto options = args.find("embedder-options")) {
    embedder = std::make_shared<redis::HashingEmbedder>(config.cache.dimension, parseEmbedderOptions(*options));
  } else {
    embedder = redis::makeEmbedder(config);
  }
  // As the configured cache does: with cache.same_category, a ticket is matched only with entries
  // of the category the classifier gives it (both sides predicted, as at intake).
  const bool same_category = config.cache.same_category && !args.has("any-category");
  std::vector<std::string> predicted(tickets.size());
  if (same_category) {
    const std::string path = config.resolvePath(config.classifier.category_model);
    auto model = classify::CategoryModel::load(path);
    if (!model) throw std::runtime_error(path + ": " + model.error().message);
    for (std::size_t i = 0; i < tickets.size(); ++i) predicted[i] = model->predict(tickets[i].text).category;
  }
  std::vector<double> best(tickets.size(), -1.0);
  std::vector<std::string> best_label(tickets.size());
  const auto started = Steady::now();
  if (in_memory) {
    // Exact nearest neighbour by brute force: the upper bound of what LSH can find.
    std::vector<std::vector<float>> vectors;
    for (std::size_t i = 0; i < tickets.size(); ++i) {
      auto v = embedder->embed(tickets[i].text);
      if (!v) throw std::runtime_error(v.error().message);
      for (std::size_t j = 0; j < vectors.size(); ++j) {
        if (predicted[j] != predicted[i]) continue;
        double dot = 0;
        for (std::size_t k = 0; k < v->size(); ++k) dot += static_cast<double>((*v)[k]) * vectors[j][k];
        if (dot > best[i]) {
          best[i] = dot;
          best_label[i] = tickets[j].label;
        }
      }
      vectors.push_back(std::move(*v));
    }
  } else {
    // The production lookup path against a private redis-server, so nothing real is touched.
    redis::EmbeddedRedisServer server;
    redis::SemanticCache cache(connectPrivate(server, 2), config.cache, "eval:", embedder);
    for (std::size_t i = 0; i < tickets.size(); ++i) {
      auto probe = cache.probe("eval", predicted[i], tickets[i].text);
      if (!probe) throw std::runtime_error(probe.error().message);
      if (probe->best) {
        best[i] = probe->best->similarity;
        best_label[i] = tickets[std::stoul(probe->best->entry.source_ticket_id)].label;
      }
      redis::CacheEntry entry;
      entry.category = predicted[i];
      entry.source_ticket_id = std::to_string(i);
      if (auto st = cache.store("eval", tickets[i].text, entry); !st) throw std::runtime_error(st.error().message);
      if ((i + 1) % 1000 == 0) std::cerr << "  replayed " << (i + 1) << " of " << tickets.size() << "\n";
    }
  }
  const double seconds = std::chrono::duration<double>(Steady::now() - started).count();
  std::cout << "cache eval: " << tickets.size() << " tickets from " << args.get("data") << ", "
            << (in_memory ? "exact nearest neighbour (in memory)" : "Redis LSH lookup path (private redis-server)")
            << ", hashing embedder dimension " << config.cache.dimension
            << (args.has("embedder-options") ? " (" + args.get("embedder-options") + ")" : "") << ", lsh "
            << config.cache.lsh_bands << "x" << config.cache.lsh_rows_per_band << ", "
            << (same_category ? "same predicted category only (cache.same_category)" : "any category") << ", "
            << std::fixed << std::setprecision(1) << seconds << " s\n";
  std::cout << "threshold    hits  hit rate  same label\n";
  for (double t : thresholds) {
    std::size_t hits = 0, agree = 0;
    for (std::size_t i = 0; i < tickets.size(); ++i) {
      if (best[i] >= t) {
        ++hits;
        agree += best_label[i] == tickets[i].label;
      }
    }
    std::cout << std::setprecision(2) << std::setw(9) << t << std::setw(8) << hits << std::setw(9)
              << 100.0 * static_cast<double>(hits) / static_cast<double>(tickets.size()) << "%" << std::setw(11)
              << (hits ? 100.0 * static_cast<double>(agree) / static_cast<double>(hits) : 0.0) << "%"
              << (std::fabs(t - config.cache.similarity_threshold) < 1e-9 ? "   <- configured" : "") << "\n";
  }
  if (!in_memory) {
    // The sweep stores every ticket, hits too, so each threshold is judged on the same entries. The
    // cache itself answers a hit from the entry it found and stores nothing new: replayed that way
    // at the configured threshold, this is the figure a live run's hits compare with.
    redis::EmbeddedRedisServer server;
    redis::SemanticCache cache(connectPrivate(server, 2), config.cache, "eval:", embedder);
    std::size_t hits = 0, agree = 0;
    for (std::size_t i = 0; i < tickets.size(); ++i) {
      auto probe = cache.probe("eval", predicted[i], tickets[i].text, config.cache.similarity_threshold);
      if (!probe) throw std::runtime_error(probe.error().message);
      if (probe->best) {
        ++hits;
        agree += tickets[std::stoul(probe->best->entry.source_ticket_id)].label == tickets[i].label;
        continue;
      }
      redis::CacheEntry entry;
      entry.category = predicted[i];
      entry.source_ticket_id = std::to_string(i);
      if (auto st = cache.store("eval", tickets[i].text, entry); !st) throw std::runtime_error(st.error().message);
    }
    std::cout << "as the cache runs (a hit is served, not stored again), at the configured " << std::setprecision(2)
              << config.cache.similarity_threshold << ": " << hits << " hits, "
              << 100.0 * static_cast<double>(hits) / static_cast<double>(tickets.size()) << "%, same label "
              << (hits ? 100.0 * static_cast<double>(agree) / static_cast<double>(hits) : 0.0) << "%\n";
  }
  return kExitOk;
}

// Synthetic ticket texts, so the benchmark needs no data file: 8-40 words drawn from a
// 30,000-word vocabulary with a Zipf(1) law, like natural text (a few words very common, most
// rare), plus a digit now and then.
class TextGenerator {
 public:
  explicit TextGenerator(std::uint64_t seed) : rng_(seed) {
    static const std::vector<double> cdf = [] {
      std::vector<double> c(kVocabulary);
      double sum = 0;
      for (std::size_t i = 0; i < c.size(); ++i) c[i] = (sum += 1.0 / static_cast<double>(i + 1));
      for (auto& x : c) x /= sum;
      return c;
    }();
    cdf_ = &cdf;
  }
  std::string next() {
    std::uniform_real_distribution<double> u(0.0, 1.0);
    std::uniform_int_distribution<int> len(8, 40);
    std::string out;
    const int n = len(rng_);
    for (int i = 0; i < n; ++i) {
      const auto rank = static_cast<std::size_t>(std::lower_bound(cdf_->begin(), cdf_->end(), u(rng_)) - cdf_->begin());
      if (i) out.push_back(' ');
      out += word(rank);
      if (u(rng_) < 0.05) out += std::to_string(rank % 100);
    }
    return out;
  }

 private:
  static constexpr std::size_t kVocabulary = 30'000;
  // A pronounceable pseudo-word per rank: consonant-vowel syllables from the rank's digits.
  static std::string word(std::size_t rank) {
    static const char* kC = "bcdfghklmnprstvz";
    static const char* kV = "aeiou";
    std::string w;
    std::size_t x = rank + 7;
    do {
      w.push_back(kC[x % 16]);
      x /= 16;
      w.push_back(kV[x % 5]);
      x /= 5;
    } while (x);
    return w;
  }
  std::mt19937_64 rng_;
  const std::vector<double>* cdf_;
};

int runEvalRouting(const cli::ParsedArgs& args) {
  const Config config = loadConfigOption(args);
  const auto pool = connectConfigured(config);
  redis::AgreementStore store(pool, config.redis.key_prefix);
  if (auto out = args.find("export-labels")) {
    auto labels = store.labels();
    if (!labels) throw std::runtime_error(labels.error().message);
    std::ofstream file(*out, std::ios::trunc);
    if (!file) throw std::runtime_error(*out + ": cannot write");
    for (const auto& l : *labels) file << l.toJson().dump() << "\n";
    if (!file.flush()) throw std::runtime_error(*out + ": write failed");
    std::cout << "wrote " << labels->size() << " shadow labels to " << *out << "\n";
  }
  auto table = store.table();
  if (!table) throw std::runtime_error(table.error().message);
  std::cout << pipeline::agreementText(*table, config.shadow.reference_tier);
  redis::RouteShareStore shares(pool, config.redis.key_prefix);
  if (config.routing.targets.enabled()) {
    auto shared = shares.thresholds();
    if (!shared) throw std::runtime_error(shared.error().message);
    const auto t = shared->value_or(classify::RouteThresholds::configured(config.classifier.difficulty));
    std::cout << "\nrouting.targets:";
    for (const auto& [tier, share] : config.routing.targets.shares) std::cout << " " << tier << " " << fixed(share);
    std::cout << "\ndifficulty thresholds in force"
              << (shared->has_value() ? "" : " (the configured ones, never adjusted)") << ": easy_below "
              << fixed(t.easy_below) << ", hard_from " << fixed(t.hard_from) << "\n";
    for (const auto& [category, easy] : t.easy_below_by_category)
      std::cout << "  " << category << ": easy_below " << fixed(std::min(easy, t.hard_from))
                << " (kept: the easy tier is below the quality floor there)\n";
  }
  if (args.has("reset")) {
    if (auto st = store.reset(); !st) throw std::runtime_error(st.error().message);
    if (auto st = shares.reset(config.classifier.difficulty); !st) throw std::runtime_error(st.error().message);
    std::cout << "shadow counts and labels forgotten; difficulty thresholds back to the configured ones\n";
  }
  return kExitOk;
}

// The area under the ROC curve of `score` for telling agreed from not (ties count half).
double aucOf(const std::vector<std::pair<double, bool>>& scored) {
  std::vector<std::pair<double, bool>> s = scored;
  std::sort(s.begin(), s.end());
  double positives = 0, negatives = 0, rank_sum = 0;
  for (std::size_t i = 0; i < s.size();) {
    std::size_t j = i;
    while (j < s.size() && s[j].first == s[i].first) ++j;
    const double mid_rank = (static_cast<double>(i) + static_cast<double>(j) + 1) / 2.0;  // 1-based average
    for (std::size_t k = i; k < j; ++k) {
      if (s[k].second) {
        rank_sum += mid_rank;
        ++positives;
      } else {
        ++negatives;
      }
    }
    i = j;
  }
  if (positives == 0 || negatives == 0) return 0.5;
  return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives);
}

int runTrainEscalation(const cli::ParsedArgs& args) {
  const std::string out = args.get("out");
  if (out.empty()) throw cli::UsageError("--out is required");
  std::vector<classify::AgreementLabel> labels;
  if (auto path = args.find("labels")) {
    std::ifstream in(*path);
    if (!in) throw std::runtime_error(*path + ": cannot open");
    std::size_t line_no = 0;
    constexpr std::size_t kMaxLabelLine = 64 * 1024;  // a label is a few hundred bytes
    for (std::string line; std::getline(in, line);) {
      ++line_no;
      if (line.empty()) continue;
      if (line.size() > kMaxLabelLine)
        throw std::runtime_error(*path + ":" + std::to_string(line_no) + ": line longer than " +
                                 std::to_string(kMaxLabelLine) + " bytes: not a label");
      auto label = classify::AgreementLabel::fromJson(nlohmann::json::parse(line, nullptr, false));
      if (!label) throw std::runtime_error(*path + ":" + std::to_string(line_no) + ": " + label.error().message);
      labels.push_back(std::move(*label));
    }
  } else {
    const Config config = loadConfigOption(args);
    redis::AgreementStore store(connectConfigured(config), config.redis.key_prefix);
    auto stored = store.labels();
    if (!stored) throw std::runtime_error(stored.error().message);
    labels = std::move(*stored);
  }
  if (args.has("feedback")) {
    // The helpdesk's verdicts on final answers (feedback role), after the shadow labels.
    auto from_feedback = openFeedbackStore(loadConfigOption(args)).escalationLabels();
    if (!from_feedback) throw std::runtime_error("feedback: " + from_feedback.error().message);
    std::cout << "added " << from_feedback->size() << " labels from the helpdesk's feedback\n";
    labels.insert(labels.end(), from_feedback->begin(), from_feedback->end());
  }
  if (labels.size() < 20)
    throw std::runtime_error("only " + std::to_string(labels.size()) + " labels: too few to train on");
  classify::EscalationTrainOptions options;
  options.min_tier_examples = static_cast<int>(args.getInt("min-tier-examples", 1, 1'000'000));
  options.l2 = args.getDouble("l2");
  if (!(options.l2 >= 0 && options.l2 <= 10)) throw cli::UsageError("--l2: expected a number from 0 to 10");
  // Held-out check first: every fifth example, by position.
  std::vector<classify::AgreementLabel> fit, held_out;
  for (std::size_t i = 0; i < labels.size(); ++i) (i % 5 == 4 ? held_out : fit).push_back(labels[i]);
  const auto trial = classify::EscalationModel::train(fit, options);
  std::map<std::string, std::vector<std::pair<double, bool>>> verifier, stated;
  for (const auto& l : held_out) {
    verifier[l.tier].push_back({trial.agreement(l.tier, l.features), l.agreed});
    stated[l.tier].push_back({l.features.stated_confidence, l.agreed});
  }
  std::cout << "escalation verifier: " << labels.size() << " labels; held out every fifth (" << held_out.size()
            << ")\n";
  for (const auto& [tier, scored] : verifier) {
    std::size_t agreed = 0;
    for (const auto& [score, ok] : scored) agreed += ok ? 1 : 0;
    std::cout << "  " << std::left << std::setw(10) << tier << std::right << std::setw(6) << scored.size()
              << " held out, " << std::fixed << std::setprecision(1)
              << 100.0 * static_cast<double>(agreed) / static_cast<double>(scored.size()) << "% agreed; AUC verifier "
              << std::setprecision(3) << aucOf(scored) << ", stated confidence alone " << aucOf(stated[tier]) << "\n";
  }
  const auto model = classify::EscalationModel::train(labels, options);
  std::ofstream file(out, std::ios::trunc);
  if (!file) throw std::runtime_error(out + ": cannot write");
  file << model.toJson();
  if (!file.flush()) throw std::runtime_error(out + ": write failed");
  std::cout << "wrote " << out << " (trained on all " << labels.size()
            << " labels); use it with classifier.escalation_model\n";
  return kExitOk;
}

int runBenchCache(const cli::ParsedArgs& args) {
  Config config = loadConfigOption(args);
  if (args.has("dimension")) config.cache.dimension = static_cast<int>(args.getInt("dimension", 16, 65536));
  std::vector<long long> sizes;
  {
    std::stringstream in(args.get("entries"));
    for (std::string item; std::getline(in, item, ',');) sizes.push_back(std::stoll(item));
  }
  const int threads = static_cast<int>(args.getInt("threads", 1, 64));
  const int lookups = static_cast<int>(args.getInt("lookups", 100, 1'000'000));
  redis::EmbeddedRedisServer server;
  auto pool = connectPrivate(server, threads + 1);
  redis::SemanticCache cache(pool, config.cache,
                             "bench:", std::make_shared<redis::HashingEmbedder>(config.cache.dimension));
  std::cout << "bench cache: private redis-server, hashing embedder dimension " << config.cache.dimension
            << " (int8 vectors), lsh " << config.cache.lsh_bands << "x" << config.cache.lsh_rows_per_band << ", "
            << threads << " insert threads\n";
  long long stored = 0;
  // Texts known to be stored, a uniform sample of all of them (reservoir sampling over every
  // insert), so near-duplicate queries ask for old entries as often as new ones.
  const std::size_t sample_size = static_cast<std::size_t>(lookups / 2 + 1);
  std::vector<std::string> samples;
  std::mutex samples_mutex;
  std::mt19937_64 sample_rng(42);
  for (long long target : sizes) {
    const long long to_insert = target - stored;
    if (to_insert > 0) {
      std::atomic<long long> next{0};
      std::atomic<long long> failures{0};
      const auto started = Steady::now();
      std::vector<std::thread> pool_threads;
      for (int t = 0; t < threads; ++t) {
        pool_threads.emplace_back([&, t] {
          TextGenerator gen(static_cast<std::uint64_t>(stored * 131 + t));
          redis::CacheEntry entry;
          entry.answer_json = R"({"reply":"benchmark answer"})";
          entry.model = "bench";
          entry.tier = "fast";
          entry.category = "Hardware";
          for (long long i; (i = next.fetch_add(1)) < to_insert;) {
            entry.source_ticket_id = "B-" + std::to_string(stored + i);
            std::string text = gen.next();
            if (!cache.store("bench", text, entry)) {
              ++failures;
              continue;
            }
            {
              std::lock_guard lock(samples_mutex);
              const auto seen = static_cast<std::uint64_t>(stored + i);
              if (samples.size() < sample_size)
                samples.push_back(std::move(text));
              else if (const auto slot = sample_rng() % (seen + 1); slot < sample_size)
                samples[slot] = std::move(text);
            }
            if (i > 0 && i % 100'000 == 0 && t == 0) std::cerr << "  inserted " << (stored + i) << "\n";
          }
        });
      }
      for (auto& th : pool_threads) th.join();
      const double secs = std::chrono::duration<double>(Steady::now() - started).count();
      std::cout << "  inserted " << to_insert << " entries in " << std::fixed << std::setprecision(1) << secs
                << " s: " << std::setprecision(0) << static_cast<double>(to_insert) / secs << " inserts/s"
                << (failures ? " (" + std::to_string(failures.load()) + " failed)" : "") << "\n";
      stored = target;
    }
    // Queries: half near-duplicates of stored texts (one word added), half new texts.
    TextGenerator fresh(0xfeedULL + static_cast<std::uint64_t>(target));
    std::vector<double> lat_us;
    long long hits = 0;
    (void)pool->command({"CONFIG", "RESETSTAT"});
    for (int i = 0; i < lookups; ++i) {
      std::string q = i % 2 ? fresh.next() : samples[static_cast<std::size_t>(i / 2) % samples.size()] + " again";
      const auto t0 = Steady::now();
      auto hit = cache.lookup("bench", "Hardware", q);
      lat_us.push_back(std::chrono::duration<double, std::micro>(Steady::now() - t0).count());
      hits += hit.has_value();
    }
    // Where a lookup's time goes inside redis-server, per command (the rest is the client and
    // the round trips).
    std::string server_time;
    if (auto stats = pool->command({"INFO", "commandstats"}); stats) {
      std::istringstream lines(stats->str);
      for (std::string line; std::getline(lines, line);) {
        const auto colon = line.find(':');
        const auto usec = line.find("usec=");
        if (line.rfind("cmdstat_", 0) != 0 || colon == std::string::npos || usec == std::string::npos) continue;
        const std::string name = line.substr(8, colon - 8);
        if (name.rfind("config", 0) == 0 || name == "info") continue;
        const double total_us = std::stod(line.substr(usec + 5));
        std::ostringstream part;
        part << std::fixed << std::setprecision(0) << name << " " << total_us / lookups << " us";
        server_time += (server_time.empty() ? "" : ", ") + part.str();
      }
    }
    auto info = pool->command({"INFO", "memory"});
    const std::string mem = info ? redis::infoField(info->str, "used_memory_human").value_or("?") : "?";
    std::cout << "  " << target << " entries: lookup p50 " << std::setprecision(0) << percentile(lat_us, 0.5)
              << " us, p99 " << percentile(lat_us, 0.99) << " us, max " << percentile(lat_us, 1.0) << " us (" << lookups
              << " lookups, " << hits << " hits); Redis memory " << mem << "\n"
              << "    redis-server time per lookup: " << server_time << "\n";
  }
  return kExitOk;
}

int runBenchLedger(const cli::ParsedArgs& args) {
  const Config config = loadConfigOption(args);
  const int threads = static_cast<int>(args.getInt("threads", 1, 256));
  const double seconds = static_cast<double>(args.getInt("seconds", 1, 600));
  redis::EmbeddedRedisServer server;
  BudgetsConfig budgets = config.budgets;
  redis::BudgetLedger ledger(connectPrivate(server, threads), budgets, "bench:");
  std::atomic<long long> pairs{0}, errors{0};
  const auto deadline =
      Steady::now() + std::chrono::duration_cast<Steady::duration>(std::chrono::duration<double>(seconds));
  const auto started = Steady::now();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::mt19937_64 rng(static_cast<std::uint64_t>(t));
      std::uniform_int_distribution<MicroUsd> cost(1, 2000);
      for (long long i = 0; Steady::now() < deadline; ++i) {
        const std::string id = "bench-" + std::to_string(t) + "-" + std::to_string(i);
        const MicroUsd estimate = cost(rng);
        auto r = ledger.reserve({id, 1, "tenant-" + std::to_string(t % 4), "fast", estimate});
        if (!r || !r->reserved) {
          ++errors;
          continue;
        }
        if (!ledger.settle(id, 1, estimate / 2))
          ++errors;
        else
          ++pairs;
      }
    });
  }
  for (auto& w : workers) w.join();
  const double elapsed = std::chrono::duration<double>(Steady::now() - started).count();
  std::cout << "bench ledger: private redis-server, " << threads << " threads, " << std::fixed << std::setprecision(1)
            << elapsed << " s, " << budgets.caps.size() << " configured caps (6 buckets per operation)\n"
            << "  " << pairs.load() << " reserve+settle pairs: " << std::setprecision(0)
            << static_cast<double>(pairs.load()) / elapsed << " pairs/s ("
            << 2.0 * static_cast<double>(pairs.load()) / elapsed << " ledger operations/s)"
            << (errors ? ", " + std::to_string(errors.load()) + " refused or failed" : "") << "\n";
  return kExitOk;
}

}  // namespace

std::vector<Command> redisCommands() {
  const auto cfg = configOption();
  const cli::OptionSpec scope{"scope", "S", "global, tenant or tier", ""};
  const cli::OptionSpec name{"name", "NAME", "tenant or tier name (not for global)", ""};
  const cli::OptionSpec period{"period", "P", "day or month (UTC)", ""};
  return {
      {{"budget show",
        "print spend against caps per tenant, tier and period",
        "",
        0,
        0,
        {cfg},
        "Current UTC day and month: settled spend, outstanding reservations and the cap of every capped\n"
        "bucket and every bucket with activity. Reads the ledger in the configured Redis."},
       runBudgetShow,
       ""},
      {{"budget set",
        "set a budget cap",
        "",
        0,
        0,
        {cfg,
         scope,
         name,
         period,
         {"usd", "AMOUNT", "cap in dollars, e.g. 250.00", ""},
         {"none", "", "no cap for this bucket", ""}},
        "The cap is kept in Redis and overrides budgets.caps for every replica at once.\n"
        "Example: ticketflow budget set --scope tenant --name acme --period day --usd 25"},
       runBudgetSet,
       ""},
      {{"budget reset",
        "reset spend counters (or a cap override with --cap)",
        "",
        0,
        0,
        {cfg, scope, name, period, {"cap", "", "remove the cap set by `budget set` instead of resetting spend", ""}},
        "Without --scope resets the current period's spend of every bucket. Outstanding reservations are\n"
        "kept (their settle or release still lands)."},
       runBudgetReset,
       ""},
      {{"budget release",
        "send tickets a cap deferred back to their tiers now",
        "",
        0,
        0,
        {cfg, {"tenant", "T", "only this tenant's (default: every tenant's)", ""}},
        "Tickets deferred by a cap (budgets.on_exhausted: defer) are parked on kafka.topics.deferred until\n"
        "the cap's period ends. This lets those parked so far go back at once, e.g. after raising a cap\n"
        "with `ticketflow budget set`. `ticketflow budget show` lists what is parked."},
       runBudgetRelease,
       ""},
      {{"cache stats", "print semantic cache statistics", "", 0, 0, {cfg}}, runCacheStats, ""},
      {{"cache purge",
        "purge cache entries by tenant, category or age",
        "",
        0,
        0,
        {cfg,
         {"tenant", "T", "only this tenant", ""},
         {"category", "C", "only entries of this category", ""},
         {"older-than", "SECONDS", "only entries older than this", ""},
         {"all", "", "everything (no filter)", ""}},
        "Filters combine (AND)."},
       runCachePurge,
       ""},
      {{"cache eval",
        "replay a labelled stream and measure hit rate and agreement",
        "",
        0,
        0,
        {cfg,
         {"data", "FILE", "labelled tickets, JSON lines", ""},
         {"text-col", "C", "text field", "text"},
         {"label-col", "L", "label field", "category"},
         {"thresholds", "LIST", "comma-separated cosine thresholds (default 0.80..0.99)", ""},
         {"dimension", "N", "embedder dimension (default: cache.embedder.dimension)", ""},
         {"in-memory", "", "exact nearest neighbour in memory instead of the Redis LSH path", ""},
         {"embedder-options", "LIST", "hashing embedder variant, e.g. boilerplate=1,sublinear=0", ""},
         {"any-category", "", "match entries of any category, even with cache.same_category on", ""}},
        "In order, each ticket is looked up and then inserted, as the configured cache would: with\n"
        "cache.same_category, only among entries of the category the classifier predicts for it. Prints per\n"
        "threshold the hit rate and the share of hits whose cached ticket has the same true label (every\n"
        "ticket stored), then the configured threshold replayed as the cache runs (a hit is not stored\n"
        "again): the figure a live run compares with. Uses a private redis-server; the configured Redis is\n"
        "not touched."},
       runCacheEval,
       ""},
      {{"eval routing",
        "print shadow evaluation's agreement per tier and category",
        "",
        0,
        0,
        {cfg,
         {"export-labels", "FILE", "also write the stored training labels as JSON lines", ""},
         {"reset", "", "then forget the counts and labels and the moved thresholds (after a model or profile change)",
          ""}},
        "Reads what the shadow role measured (Redis): each tier's agreement with the reference tier on\n"
        "category and needs_human per category, with 95% Wilson intervals, and the estimated agreement of\n"
        "all final model answers. With routing.targets, the difficulty thresholds in force."},
       runEvalRouting,
       ""},
      {{"train escalation",
        "train the escalation verifier on shadow labels",
        "",
        0,
        0,
        {cfg,
         {"labels", "FILE", "labels as JSON lines (eval routing --export-labels); default: Redis's", ""},
         {"out", "FILE", "model file to write", ""},
         {"min-tier-examples", "N", "a tier with fewer labels uses the pooled weights", "200"},
         {"l2", "X", "L2 strength per example", "0.001"},
         {"feedback", "", "also learn the helpdesk's verdicts (feedback role, in the Redis of --config)", ""}},
        "Fits a logistic regression per tier (and one pooled) on the answer features of each shadow\n"
        "comparison against whether the reference agreed (with --feedback, also of each answer the\n"
        "helpdesk corrected, resolved with or reopened); prints a held-out AUC against the model's\n"
        "stated confidence alone, then writes the model trained on every label."},
       runTrainEscalation,
       ""},
      {{"bench cache",
        "benchmark cache lookups and inserts",
        "",
        0,
        0,
        {cfg,
         {"entries", "LIST", "stored entry counts to measure at", "100000,1000000"},
         {"lookups", "N", "lookups per measurement", "5000"},
         {"threads", "N", "insert threads", "2"},
         {"dimension", "N", "embedder dimension (default: cache.embedder.dimension)", ""}},
        "Runs against a private redis-server. Prints insert throughput and lookup p50/p99."},
       runBenchCache,
       ""},
      {{"bench ledger",
        "benchmark budget reserve+settle",
        "",
        0,
        0,
        {cfg, {"threads", "N", "client threads", "16"}, {"seconds", "N", "duration", "5"}},
        "Runs against a private redis-server with the configured caps."},
       runBenchLedger,
       ""},
  };
}

}  // namespace ticketflow::app
