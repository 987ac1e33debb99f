#include "dry_run.hpp"

#include <cmath>
#include <memory>
#include <optional>
#include <stdexcept>

#include "cost_model.hpp"
#include "intake/intake_role.hpp"
#include "projection.hpp"
#include "ticketflow/classify/category_model.hpp"
#include "ticketflow/redis/embedded_server.hpp"
#include "ticketflow/redis/pool.hpp"
#include "ticketflow/redis/semantic_cache.hpp"

namespace ticketflow::triage {

TriageReport dryRun(const Config& config, const TriageOptions& options, const std::vector<Ticket>& tickets) {
  const auto started = std::chrono::steady_clock::now();
  TriageReport report;
  report.source = options.path;
  report.dry_run = true;
  auto model = classify::CategoryModel::load(config.resolvePath(config.classifier.category_model));
  if (!model) throw ConfigError(config.source, "classifier.category_model", model.error().message);
  const intake::TicketTriager triager(config, *model);
  const CostModel costs(config, options.assumed_output_tokens);

  // The real cache on a private Redis, so the projection uses production's thresholds.
  std::unique_ptr<redis::EmbeddedRedisServer> server;
  std::unique_ptr<redis::SemanticCache> cache;
  if (config.cache.enabled) {
    try {
      server = std::make_unique<redis::EmbeddedRedisServer>();
      RedisConfig rc;
      rc.url = server->url();
      auto pool_options = redis::RedisPoolOptions::fromConfig(rc);
      if (pool_options) {
        auto pool = std::make_shared<redis::RedisPool>(*pool_options);
        // The built-in embedder even when an embeddings endpoint is configured: a dry run calls
        // no model, so its clusters are the hashing embedder's.
        cache = std::make_unique<redis::SemanticCache>(
            pool, config.cache, "dry:", std::make_shared<embed::HashingEmbedder>(config.cache.dimension));
        report.cache_projected = true;
      }
    } catch (const std::exception&) {
      server.reset();  // no redis-server here: the projection has no cache hits, and says so
    }
  }
  std::optional<LiveCalibration> calibration;
  ProjectionRange range;
  if (!options.calibration_path.empty()) {
    auto loaded_calibration = LiveCalibration::fromStateFile(options.calibration_path);
    if (!loaded_calibration) throw std::runtime_error(loaded_calibration.error().message);
    calibration = std::move(*loaded_calibration);
    report.calibration_outcomes = calibration->outcomes();
  }
  TriageProgress progress;
  progress.total = tickets.size();
  for (const Ticket& t : tickets) {
    const auto decision = triager.decide(t);
    TicketOutcome o;
    o.ticket_id = t.id;
    o.tenant = t.tenant;
    o.subject = t.subject;
    o.category = decision.classification.category;
    o.label = ticketLabel(t);
    o.difficulty = decision.classification.difficulty;
    o.confidence = decision.classification.confidence;
    o.tier = decision.route.tier;
    o.frontier_micro_usd = calibration ? std::llround(calibration->forTicket(o.category, o.difficulty).frontier_mean)
                                       : costs.frontier(t, o.category, {});
    std::optional<redis::CacheHit> hit;
    if (cache) hit = cache->lookup(t.tenant, o.category, t.text());
    if (hit) {
      o.cache = hit->exact ? CacheStatus::kExact : CacheStatus::kSemantic;
      o.cache_source = hit->entry.source_ticket_id;
    } else {
      if (calibration) {
        const auto& cell = calibration->forTicket(o.category, o.difficulty);
        o.cost_micro_usd = std::llround(cell.mean);
        range.add(cell);
      } else {
        o.cost_micro_usd = costs.projected(o.tier, t, o.category);
      }
      if (cache) {
        redis::CacheEntry entry;
        entry.answer_json = "{}";
        entry.tier = o.tier;
        entry.cost_micro_usd = o.cost_micro_usd;
        entry.source_ticket_id = t.id;
        entry.category = o.category;
        entry.created = std::chrono::system_clock::now();
        cache->insert(t.tenant, t.text(), entry);
      }
    }
    report.outcomes.push_back(std::move(o));
    ++progress.done;
    progress.submitted = progress.done;
    if (options.progress && (progress.done % 256 == 0 || progress.done == progress.total)) {
      progress.seconds = secondsSince(started);
      options.progress(progress);
    }
  }
  report.seconds = secondsSince(started);
  if (calibration) report.projected_range = {range.low(), range.high()};
  return report;
}

}  // namespace ticketflow::triage
