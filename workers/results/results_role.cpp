#include "results_role.hpp"

#include <algorithm>
#include <charconv>
#include <map>
#include <set>

#include "ticketflow/core/crypto.hpp"

namespace ticketflow::results {
namespace {

// In the markers hash, "<sink>" means written and "pending:<sink>" (its value: the start, in ms
// since the epoch) means a write was begun.
const std::string kPendingPrefix = redis::WrittenMarkers::kPendingPrefix;
// How long after a write's own timeout it is taken to have ended (clocks of two writers differ).
constexpr std::int64_t kInFlightGraceMs = 2000;

std::string secretFrom(const Config& config, std::size_t index, EnvLookup env) {
  const SinkConfig& sink = config.results.sinks[index];
  if (sink.secret_env.empty()) return {};
  auto value = env(sink.secret_env);
  if (!value || value->empty())
    throw ConfigError(config.source, "results.sinks[" + std::to_string(index) + "].secret_env",
                      "environment variable " + sink.secret_env + " is not set");
  return *value;
}

}  // namespace

std::vector<SinkBinding> makeSinks(const Config& config, EnvLookup env) {
  std::vector<SinkBinding> out;
  for (std::size_t i = 0; i < config.results.sinks.size(); ++i) {
    const SinkConfig& c = config.results.sinks[i];
    SinkBinding binding{c, nullptr};
    if (c.kind != SinkKind::kTopic) {
      http::HttpClientOptions options;
      options.total_timeout = std::chrono::milliseconds(c.timeout_ms);
      options.read_timeout = std::chrono::milliseconds(c.timeout_ms);
      options.proxy = config.proxy;
      auto client = std::make_shared<http::HttpClient>(options);
      const std::string secret = secretFrom(config, i, env);
      switch (c.kind) {
        case SinkKind::kWebhook:
          binding.sink = makeWebhookSink({c.name, c.url, secret, c.headers}, client);
          break;
        case SinkKind::kJira:
          binding.sink = makeJiraSink({c.name, c.url, c.username, secret, c.label_prefix}, client);
          break;
        case SinkKind::kServiceNow:
          binding.sink = makeServiceNowSink({c.name, c.url, c.username, secret, c.assignment_groups}, client);
          break;
        case SinkKind::kTopic:
          break;
      }
    }
    out.push_back(std::move(binding));
  }
  return out;
}

ResultsRole::ResultsRole(const Config& config, std::vector<SinkBinding> sinks,
                         std::unique_ptr<redis::WrittenMarkers> markers, observability::PipelineMetrics* metrics,
                         const Clock& clock, int http_threads, observability::Logger* logger)
    : config_(config), sinks_(std::move(sinks)), metrics_(metrics), clock_(clock), logger_(logger) {
  bool has_topic_sink = false;
  for (const auto& s : sinks_) {
    has_http_sinks_ = has_http_sinks_ || s.sink != nullptr;
    has_topic_sink = has_topic_sink || s.sink == nullptr;
  }
  if (config_.results.exactly_once && markers && has_topic_sink)
    finder_ = std::make_unique<kafka::RecordFinder>(config_.kafka, "results-finder");
  // Writes block (HTTP, and the pending marks and look-ups of exactly-once): never on the
  // batcher's thread.
  if (has_http_sinks_ || finder_) http_ = std::make_unique<WorkerPool>(http_threads, "tf-sink-http");
  markers_ = std::move(markers);
}

ResultsRole::~ResultsRole() {
  if (http_) http_->stop();
  markers_.reset();  // its batcher's last callbacks may still hand writes to the stopped pool
  finder_.reset();
}

stage::Handler ResultsRole::handler() {
  return [this](const std::shared_ptr<const stage::Delivery>& delivery, stage::Completion completion) {
    auto result = parseTicketResult(delivery->message.value);
    if (!result) return completion.fail(result.error());  // malformed: dead letter at once
    auto update = std::make_shared<const TicketUpdate>(TicketUpdate::fromResult(*result, formatRfc3339(clock_.now())));
    auto writeAll = [this, delivery, completion, update](std::map<std::string, std::string> written) {
      if (http_) {
        http_->submit([this, delivery, completion, update, written = std::move(written)] {
          write(*delivery, completion, *update, written);
        });
      } else {
        write(*delivery, completion, *update, written);
      }
    };
    if (!markers_) return writeAll({});
    // Which sinks already have this update: asked in the markers' next shared round trip.
    // Redis down: the update waits for it (held, no attempt used) rather than writing blind.
    markers_->read(markers_->keyFor(update->tenant, update->ticket_id, update->revision),
                   [completion, writeAll](Result<redis::WrittenMarkers::Marks> marks) {
                     if (!marks) return completion.fail(marks.error());
                     writeAll(std::move(*marks));
                   });
  };
}

void ResultsRole::markWritten(const std::string& key, const std::vector<std::string>& sinks) {
  if (markers_) markers_->markWritten(key, sinks, formatRfc3339(clock_.now()));
}

int ResultsRole::topicWriteTimeoutMs(const Config& config) {
  int timeout_ms = 0;
  for (const SinkConfig& sink : config.results.sinks)
    if (sink.kind == SinkKind::kTopic) timeout_ms = std::max(timeout_ms, sink.timeout_ms);
  return timeout_ms;
}

Result<ResultsRole::TopicPlacement> ResultsRole::placeOnTopic(const std::string& key) {
  constexpr auto kEndsRefresh = std::chrono::seconds(5);
  constexpr auto kMetadataTimeout = std::chrono::seconds(5);
  std::vector<std::int64_t> ends;
  bool stale = false;
  {
    std::lock_guard lock(placement_mutex_);
    ends = partition_ends_;
    stale = std::chrono::steady_clock::now() - ends_read_at_ > kEndsRefresh;
  }
  // One thread refreshes; the others place with the ends they have (still floors). Without any
  // yet, every thread waits for the first read.
  std::unique_lock finding(finder_mutex_, std::defer_lock);
  if (ends.empty()) {
    finding.lock();
  } else if (stale) {
    (void)finding.try_lock();
  }
  if (finding.owns_lock()) {
    std::lock_guard check(placement_mutex_);
    ends = partition_ends_;
    stale = std::chrono::steady_clock::now() - ends_read_at_ > kEndsRefresh;
  }
  if (finding.owns_lock() && stale) {
    auto count = finder_->partitionCount(config_.kafka.topics.updates, kMetadataTimeout);
    if (!count) {
      if (ends.empty()) return count.error();
      std::lock_guard lock(placement_mutex_);  // keep the older ends; try again in a while
      ends_read_at_ = std::chrono::steady_clock::now();
    } else {
      std::vector<std::int64_t> fresh;
      for (std::int32_t p = 0; p < *count; ++p) {
        auto end = finder_->endOffset(config_.kafka.topics.updates, p, kMetadataTimeout);
        if (!end) break;
        fresh.push_back(*end);
      }
      if (static_cast<std::int32_t>(fresh.size()) == *count) {
        ends = fresh;
        std::lock_guard lock(placement_mutex_);
        partition_ends_ = std::move(fresh);
        ends_read_at_ = std::chrono::steady_clock::now();
      } else if (!ends.empty()) {  // keep the older ends (still floors); try again in a while
        std::lock_guard lock(placement_mutex_);
        ends_read_at_ = std::chrono::steady_clock::now();
      } else {
        return Error::unavailable("the updates topic's partition ends could not be read").asOutage("kafka");
      }
    }
  }
  TopicPlacement placement;
  placement.partition = kafka::partitionForKey(key, static_cast<std::int32_t>(ends.size()));
  placement.floor = ends[static_cast<std::size_t>(placement.partition)];
  return placement;
}

Result<bool> ResultsRole::onTopic(const TicketUpdate& update, const TopicPlacement& placement) {
  std::lock_guard lock(finder_mutex_);
  return finder_->contains(config_.kafka.topics.updates, placement.partition, placement.floor,
                           {kWriteMarkerHeader, writeMarker(update)}, std::chrono::seconds(30));
}

void ResultsRole::write(const stage::Delivery& delivery, const stage::Completion& completion,
                        const TicketUpdate& update, const std::map<std::string, std::string>& written) {
  const std::string key = markers_ ? markers_->keyFor(update.tenant, update.ticket_id, update.revision) : "";
  const std::string source_system = update.source ? update.source->system : std::string();
  std::vector<stage::OutputRecord> outputs;
  std::vector<std::string> topic_sinks;
  std::vector<std::string> written_now;
  // Before an HTTP sink is written, record that it is about to be: a crash between the write
  // and its marker then leaves "pending" without "written", and the next attempt asks the sink
  // whether our write is there instead of writing blind (ResultSink::write).
  const auto now_ms = epochMillis(clock_.now());
  std::vector<std::pair<std::string, std::string>> pending;
  bool http_to_mark = false;  // an HTTP sink is written (or looked up) by this attempt
  // results.exactly_once: where the update goes on the updates topic, and whether an earlier
  // attempt began producing it there (then it is looked up before it is produced again).
  std::optional<TopicPlacement> placement;
  bool topic_begun = false;
  for (const SinkBinding& binding : sinks_) {
    const std::string& name = binding.config.name;
    const bool topic = binding.sink == nullptr;
    if ((topic && !finder_) || !binding.config.serves(source_system) || written.count(name)) continue;
    http_to_mark = http_to_mark || !topic;
    auto begun = written.find(kPendingPrefix + name);
    if (begun == written.end()) {
      // The topic's mark is written just before its produce (below), so that it dates the produce.
      if (!topic) pending.emplace_back(kPendingPrefix + name, std::to_string(now_ms));
      continue;
    }
    // A write begun less than its timeout ago may still be on its way (the attempt that began
    // it timed out, or a writer that lost its partitions is still writing): a look-up now could
    // miss it and write a second. Wait until it must have ended.
    const std::string& mark = begun->second;
    const char* const mark_end = mark.data() + mark.size();
    std::int64_t begun_ms = 0;
    auto [next, parsed] = std::from_chars(mark.data(), mark_end, begun_ms);
    const int timeout_ms = topic ? topicWriteTimeoutMs(config_) : binding.config.timeout_ms;
    const std::int64_t settled_at = begun_ms + timeout_ms + kInFlightGraceMs;
    if (now_ms < settled_at)
      return completion.fail(Error(ErrorCode::kUnavailable,
                                   name + ": a write begun " + std::to_string(now_ms - begun_ms) +
                                       " ms ago may still be in flight; looking for it once it must have ended",
                                   true, settled_at - now_ms)
                                 .asOutage("sink"));
    if (topic && !placement) {
      TopicPlacement earlier;
      bool placed = parsed == std::errc() && next < mark_end && *next == ':';
      if (placed) placed = std::from_chars(next + 1, mark_end, earlier.partition).ec == std::errc();
      if (placed) {
        const char* floor_at = std::find(next + 1, mark_end, ':');
        placed = floor_at < mark_end && std::from_chars(floor_at + 1, mark_end, earlier.floor).ec == std::errc();
      }
      if (!placed) {  // a mark this version did not write: search the key's partition whole
        auto now_placed = placeOnTopic(update.ticket_id);
        if (!now_placed) return completion.fail(now_placed.error());
        earlier = {now_placed->partition, 0};
      }
      placement = earlier;
      topic_begun = true;
    }
  }
  if (markers_ && http_to_mark) {
    if (auto marked = markers_->markPending(key, pending); !marked) return completion.fail(marked.error());
  }
  for (const SinkBinding& binding : sinks_) {
    const std::string& name = binding.config.name;
    if (!binding.config.serves(source_system)) continue;
    if (written.count(name)) {
      if (metrics_) metrics_->updates_duplicate.with({name}).inc();
      continue;
    }
    if (!binding.sink) {  // the updates topic: produced once the HTTP sinks are through
      topic_sinks.push_back(name);
      continue;
    }
    auto status = binding.sink->write(update, written.count(kPendingPrefix + name) > 0);
    if (!status) {
      if (metrics_) metrics_->sink_errors.with({name, status.error().retriable ? "true" : "false"}).inc();
      if (logger_)
        logger_->warn("sink_write_failed", {{"sink", name},
                                            {"ticket_id", update.ticket_id},
                                            {"trace_id", update.trace_id},
                                            {"error_class", errorCodeName(status.error().code)},
                                            {"retriable", status.error().retriable}});
      if (status.error().retriable) {
        markWritten(key, written_now);  // those need not be written again on the retry
        // A sink that is down (transport, 5xx, 429) holds the update until it is back.
        return completion.fail(status.error().asOutage("sink"));
      }
      // This sink will never take the update: record it for an operator, and go on with the rest.
      DeadLetter d = stage::deadLetterFor("results:" + name, status.error(), delivery, clock_);
      d.ticket_id = update.ticket_id;
      if (isTraceId(update.trace_id)) d.trace_id = update.trace_id;
      outputs.push_back({config_.kafka.topics.dlq,
                         update.ticket_id,
                         toJson(d),
                         {{stage::kStageHeader, d.stage}, {stage::kErrorClassHeader, errorCodeName(d.error_class)}},
                         {}});
      written_now.push_back(name);  // handled: a redelivery must not dead-letter it again
      continue;
    }
    if (metrics_) metrics_->updates_written.with({name}).inc();
    written_now.push_back(name);
  }
  if (!topic_sinks.empty()) {
    // Looked up last, so that a retry for a slow HTTP sink does not read the topic each time.
    if (topic_begun) {
      auto found = onTopic(update, *placement);
      if (!found) {
        markWritten(key, written_now);
        return completion.fail(found.error());
      }
      if (logger_)
        logger_->info("update_looked_up", {{"ticket_id", update.ticket_id},
                                           {"trace_id", update.trace_id},
                                           {"partition", placement->partition},
                                           {"found", *found}});
      if (*found) {  // produced by an attempt that crashed before marking it
        for (const auto& name : topic_sinks) {
          if (metrics_) metrics_->updates_duplicate.with({name}).inc();
          written_now.push_back(name);
        }
        topic_sinks.clear();
      }
    }
    if (!topic_sinks.empty() && finder_) {
      // "<ms>:<partition>:<floor>", written (or rewritten, keeping the place) right before the
      // produce: a redelivery waits out the produce from this moment, then looks from the floor.
      if (!placement) {
        auto placed = placeOnTopic(update.ticket_id);
        if (!placed) {
          markWritten(key, written_now);
          return completion.fail(placed.error());
        }
        placement = *placed;
      }
      const auto mark_ms = epochMillis(clock_.now());  // later than now_ms: the HTTP writes came first
      std::vector<std::pair<std::string, std::string>> topic_pending;
      for (const auto& name : topic_sinks)
        topic_pending.emplace_back(kPendingPrefix + name, std::to_string(mark_ms) + ":" +
                                                              std::to_string(placement->partition) + ":" +
                                                              std::to_string(placement->floor));
      if (auto marked = markers_->markPending(key, topic_pending); !marked) {
        markWritten(key, written_now);
        return completion.fail(marked.error());
      }
    }
    if (!topic_sinks.empty()) {
      stage::OutputRecord out{config_.kafka.topics.updates,
                              update.ticket_id,
                              toJson(update),
                              {{"idempotency-key", idempotencyKey(update)}, {kWriteMarkerHeader, writeMarker(update)}},
                              {}};
      if (placement) out.partition = placement->partition;
      outputs.push_back(std::move(out));
    }
  }
  markWritten(key, written_now);
  const double seconds = static_cast<double>(update.latency_ms) / 1000.0;
  nlohmann::json fields;
  if (logger_ && logger_->enabled(observability::LogLevel::kInfo)) {
    // Ids and triage facts only: never the ticket's text or the answer.
    fields = {{"ticket_id", update.ticket_id},
              {"trace_id", update.trace_id},
              {"tenant", update.tenant},
              {"revision", update.revision},
              {"category", update.category},
              {"tier", update.tier},
              {"model", update.model},
              {"cache", cacheStatusName(update.cache)},
              {"cost_micro_usd", update.cost_micro_usd},
              {"latency_ms", update.latency_ms},
              {"needs_human", update.needs_human},
              {"degraded", update.degraded},
              {"sinks_written", written_now.size() + topic_sinks.size()}};
  }
  completion.succeed(std::move(outputs), [this, key, topic_sinks, seconds, fields = std::move(fields)] {
    markWritten(key, topic_sinks);
    if (logger_ && !fields.is_null()) logger_->info("ticket_updated", fields);
    if (metrics_) {
      for (const auto& name : topic_sinks) metrics_->updates_written.with({name}).inc();
      metrics_->end_to_end_seconds.with({}).observe(seconds);
    }
  });
}

}  // namespace ticketflow::results
