// cache stats|purge|eval: the semantic cache, and the replay that measures its hit rate and agreement.
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

using Steady = std::chrono::steady_clock;

std::shared_ptr<const embed::Embedder> statsOnlyEmbedder(const Config& config) {
  return std::make_shared<embed::HashingEmbedder>(config.cache.dimension);
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
embed::HashingEmbedderOptions parseEmbedderOptions(const std::string& text) {
  embed::HashingEmbedderOptions o;
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
  std::shared_ptr<const embed::Embedder> embedder;
  if (auto options = args.find("embedder-options")) {
    embedder = std::make_shared<embed::HashingEmbedder>(config.cache.dimension, parseEmbedderOptions(*options));
  } else {
    embedder = embed::makeEmbedder(config);
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

}  // namespace

std::vector<Command> cacheCommands() {
  const auto cfg = configOption();
  const cli::OptionSpec scope{"scope", "S", "global, tenant or tier", ""};
  const cli::OptionSpec name{"name", "NAME", "tenant or tier name (not for global)", ""};
  const cli::OptionSpec period{"period", "P", "day or month (UTC)", ""};
  return {
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
  };
}

}  // namespace ticketflow::app
