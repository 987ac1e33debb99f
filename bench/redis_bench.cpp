// bench cache, bench ledger: the semantic cache and the budget ledger against a private
// redis-server.
#include <algorithm>
#include <atomic>
#include <iostream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "cli/command.hpp"
#include "ticketflow/config/config.hpp"
#include "ticketflow/core/stats.hpp"
#include "ticketflow/redis/budget_ledger.hpp"
#include "ticketflow/redis/embedded_server.hpp"
#include "ticketflow/redis/semantic_cache.hpp"

namespace ticketflow::app {
namespace {

using Steady = std::chrono::steady_clock;

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
                             "bench:", std::make_shared<embed::HashingEmbedder>(config.cache.dimension));
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

std::vector<Command> redisBenchCommands() {
  const auto cfg = configOption();
  return {
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
