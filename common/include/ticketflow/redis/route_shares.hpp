#pragma once
// routing.targets in Redis: the window of final answers every tier role counts into, and the
// difficulty thresholds every router and tier role applies, shared by all processes.
//
// RouteShareStore — the keys: <prefix>routing:window (hash: "v", "n", "t|<tier>", "c|<category>"),
// <prefix>routing:thresholds (hash: version, easy_below, hard_from, "easy_below|<category>"),
// <prefix>routing:cohort:<version> (a set of the tickets measured under that version; a day).
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
#include "ticketflow/observability/log.hpp"
#include "ticketflow/observability/pipeline_metrics.hpp"
#include "ticketflow/redis/pool.hpp"

namespace ticketflow::redis {

struct Enrolment {
  bool measured = false;
  std::optional<classify::ShareWindow> closed;  // the window this enrolment closed
};

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
  // Whether `ticket` (tenant:id:revision), reaching its first tier under thresholds `version`, is
  // in that version's cohort: the first `window` tickets are; asked again, the same answer. When
  // the cohort is full and its window has 90% of it answered but no answer for `stale_after`,
  // this call closes the window instead of waiting for the rest (they may never come).
  Result<Enrolment> enroll(std::int64_t version, const std::string& ticket, int window,
                           std::chrono::seconds stale_after);
  // Back to the configured thresholds, as a new version (a version never goes back: answers in
  // flight under an older one must not count in the next window).
  Status reset(const DifficultyConfig& configured);

 private:
  std::shared_ptr<RedisPool> pool_;
  std::string window_key_, thresholds_key_, cohort_prefix_;
};

// What a ticket reaching its first tier carries for routing.targets (Route::thresholds_version,
// Route::measured_for_shares).
struct ShareStamp {
  std::int64_t version = 0;
  bool measured = false;
};

class RouteShareLoop {
 public:
  // `easy_tier_closed(category)`: whether the easy tier is closed to the category (the shadow
  // quality floor); null: never. `metrics` and `logger` may be null.
  RouteShareLoop(const Config& config, std::shared_ptr<RedisPool> pool, std::string key_prefix,
                 std::function<bool(const std::string& category)> easy_tier_closed,
                 observability::PipelineMetrics* metrics = nullptr, const Clock& clock = SystemClock::instance(),
                 std::chrono::milliseconds refresh = std::chrono::seconds(1), observability::Logger* logger = nullptr);

  // The thresholds in force for a category.
  classify::Thresholds thresholdsFor(const std::string& category);
  classify::RouteThresholds current();
  // For a ticket reaching its first tier: the version of the thresholds in force, and whether it
  // is among the `window` tickets of that version whose final tiers are measured (a cohort of
  // arrivals, not of answers: in a backlog the fast tier answers first, and a window filled by
  // answers in the order they come would hold too many of them).
  ShareStamp enroll(const std::string& ticket);
  std::int64_t version();  // of the thresholds in force (0: the configured ones)
  // A measured ticket's final answer (best effort: Redis away, the answer is not counted). A
  // window closes once its whole cohort has answered, or once 90% has and nothing came for
  // kStaleWindow (the rest may never reach a model: a cap's hand-off, a lost count).
  static constexpr std::chrono::seconds kStaleWindow{30};
  void answered(const std::string& tier, const std::string& category, std::int64_t version);

 private:
  void refreshIfDue();
  void adjust(const classify::ShareWindow& window);
  void publish(const classify::RouteThresholds& thresholds);

  const Config& config_;
  RouteShareStore store_;
  std::function<bool(const std::string&)> easy_tier_closed_;
  observability::PipelineMetrics* metrics_;
  observability::Logger* logger_;
  const Clock& clock_;
  const std::chrono::milliseconds refresh_;
  std::mutex mutex_;
  classify::RouteThresholds thresholds_;
  std::chrono::steady_clock::time_point read_at_{};
  bool read_ = false;
  bool reading_ = false;  // a thread is reading them from Redis
};

}  // namespace ticketflow::redis
