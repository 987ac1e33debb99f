#pragma once
// routing.targets in Redis: the window of final answers every tier role counts into, and the
// difficulty thresholds every router and tier role applies, shared by all processes.
//
// RouteShareStore — the keys: <prefix>routing:window (hash: "v", "n", "t|<tier>", "c|<category>"),
// <prefix>routing:thresholds (hash: version, easy_below, hard_from, "easy_below|<category>").
// The answer that fills a window takes it (one Lua script: counted, read and deleted at once), so
// each window is adjusted after exactly once, by one process; the thresholds are written with a
// compare-and-set on their version.
//
// RouteShareLoop — one per process: counts its tier roles' final answers, adjusts the thresholds
// when one of them closes a window (classify::adjustForShares), and serves the thresholds in
// force, re-read from Redis at most every `refresh` (the configured ones until the first read; the
// last ones read while Redis is away: it never holds a ticket).
// Threading: thread-safe.

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "ticketflow/classify/routing.hpp"
#include "ticketflow/config/config.hpp"
#include "ticketflow/core/clock.hpp"
#include "ticketflow/core/result.hpp"
#include "ticketflow/observability/pipeline_metrics.hpp"
#include "ticketflow/redis/pool.hpp"

namespace ticketflow::redis {

class RouteShareStore {
 public:
  RouteShareStore(std::shared_ptr<RedisPool> pool, std::string key_prefix);

  // Counts a final answer of a ticket that reached its first tier under thresholds `version`; the
  // window's counts when this answer filled it (`window` answers). A window counts the answers of
  // one version only: after the thresholds move, the answers still in flight under the old ones
  // would judge the new ones by what they did not decide (and make the loop overshoot).
  Result<std::optional<classify::ShareWindow>> recordAnswer(const std::string& tier, const std::string& category,
                                                            int window, std::int64_t version);
  // The shared thresholds; nullopt when none was written yet.
  Result<std::optional<classify::RouteThresholds>> thresholds();
  // Writes `next` if the shared copy is still at `expected_version` (0: none yet): true if written
  // (as version expected_version + 1).
  Result<bool> storeThresholds(const classify::RouteThresholds& next, std::int64_t expected_version);
  // Forgets the window and the thresholds (back to the configured ones).
  Status reset();

 private:
  std::shared_ptr<RedisPool> pool_;
  std::string window_key_, thresholds_key_;
};

class RouteShareLoop {
 public:
  // `easy_tier_closed(category)`: whether the easy tier is closed to the category (the shadow
  // quality floor); null: never. `metrics` may be null.
  RouteShareLoop(const Config& config, std::shared_ptr<RedisPool> pool, std::string key_prefix,
                 std::function<bool(const std::string& category)> easy_tier_closed,
                 observability::PipelineMetrics* metrics = nullptr, const Clock& clock = SystemClock::instance(),
                 std::chrono::milliseconds refresh = std::chrono::seconds(1));

  // The thresholds in force for a category.
  classify::Thresholds thresholdsFor(const std::string& category);
  classify::RouteThresholds current();
  // The version of the thresholds in force (0: the configured ones).
  std::int64_t version();
  // A tier's final answer, of a ticket that reached its first tier under thresholds `version`
  // (best effort: Redis away, the answer is not counted).
  void answered(const std::string& tier, const std::string& category, std::int64_t version);

 private:
  void refreshIfDue();
  void adjust(const classify::ShareWindow& window);
  void publish(const classify::RouteThresholds& thresholds);

  const Config& config_;
  RouteShareStore store_;
  std::function<bool(const std::string&)> easy_tier_closed_;
  observability::PipelineMetrics* metrics_;
  const Clock& clock_;
  const std::chrono::milliseconds refresh_;
  std::mutex mutex_;
  classify::RouteThresholds thresholds_;
  std::chrono::steady_clock::time_point read_at_{};
  bool read_ = false;
  bool reading_ = false;  // a thread is reading them from Redis
};

}  // namespace ticketflow::redis
