#include "triage.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "intake/intake_role.hpp"
#include "pipeline/agreement_report.hpp"
#include "pipeline/pipeline.hpp"
#include "projection.hpp"
#include "ticketflow/classify/category_model.hpp"
#include "ticketflow/core/crypto.hpp"
#include "ticketflow/core/stats.hpp"
#include "ticketflow/kafka/client.hpp"
#include "ticketflow/redis/embedded_server.hpp"
#include "ticketflow/redis/pool.hpp"
#include "ticketflow/redis/semantic_cache.hpp"

namespace ticketflow::pipeline {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

std::string keyOf(const std::string& tenant, const std::string& id) {
  return tenant + "/" + id;
}

double secondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// A stream that drops what it is given (pipeline logs nobody asked for).
class NullBuffer : public std::streambuf {
 protected:
  int overflow(int c) override { return c; }
};

json outcomeJson(const TicketOutcome& o) {
  return {{"id", o.ticket_id},
          {"tenant", o.tenant},
          {"subject", o.subject},
          {"category", o.category},
          {"answer_category", o.answer_category},
          {"label", o.label},
          {"routed_tier", o.routed_tier},
          {"moves", o.moves},
          {"difficulty", difficultyName(o.difficulty)},
          {"confidence", o.confidence},
          {"tier", o.tier},
          {"model", o.model},
          {"cache", cacheStatusName(o.cache)},
          {"cache_source", o.cache_source},
          {"cost", o.cost_micro_usd},
          {"frontier", o.frontier_micro_usd},
          {"input_tokens", o.usage.input_tokens},
          {"output_tokens", o.usage.output_tokens},
          {"latency_ms", o.latency_ms},
          {"degraded", o.degraded},
          {"needs_human", o.needs_human},
          {"needs_human_reason", o.needs_human_reason},
          {"dead_lettered", o.dead_lettered},
          {"error", o.error}};
}

TicketOutcome outcomeFrom(const json& j) {
  TicketOutcome o;
  o.ticket_id = j.value("id", "");
  o.tenant = j.value("tenant", "");
  o.subject = j.value("subject", "");
  o.category = j.value("category", "");
  o.answer_category = j.value("answer_category", "");
  o.label = j.value("label", "");
  o.routed_tier = j.value("routed_tier", "");
  o.moves = j.value("moves", "");
  o.difficulty = parseDifficulty(j.value("difficulty", "medium")).value_or(Difficulty::kMedium);
  o.confidence = j.value("confidence", 0.0);
  o.tier = j.value("tier", "");
  o.model = j.value("model", "");
  const std::string cache = j.value("cache", "miss");
  o.cache = parseCacheStatus(cache);
  o.cache_source = j.value("cache_source", "");
  o.cost_micro_usd = j.value("cost", MicroUsd{0});
  o.frontier_micro_usd = j.value("frontier", MicroUsd{0});
  o.usage.input_tokens = j.value("input_tokens", std::int64_t{0});
  o.usage.output_tokens = j.value("output_tokens", std::int64_t{0});
  o.latency_ms = j.value("latency_ms", std::int64_t{-1});
  o.degraded = j.value("degraded", false);
  o.needs_human = j.value("needs_human", false);
  o.needs_human_reason = j.value("needs_human_reason", "");
  o.dead_lettered = j.value("dead_lettered", false);
  o.error = j.value("error", "");
  return o;
}

struct LoadedTickets {
  std::vector<Ticket> tickets;
  std::vector<std::string> skipped;
};

LoadedTickets loadTickets(const BacklogOptions& options) {
  auto records = readTicketRecords(options.path);
  if (!records) throw std::runtime_error(records.error().message);
  LoadedTickets out;
  std::map<std::string, std::size_t> seen;  // key -> line
  for (const auto& record : *records) {
    if (options.limit && out.tickets.size() >= options.limit) break;
    auto ticket = ticketFromRecord(record, options.columns, options.defaults);
    if (!ticket) {
      out.skipped.push_back(options.path + ": " + ticket.error().message);
      continue;
    }
    const std::string key = keyOf(ticket->tenant, ticket->id);
    if (auto [it, fresh] = seen.emplace(key, record.line); !fresh) {
      out.skipped.push_back(options.path + ": line " + std::to_string(record.line) + ": ticket " + ticket->id + " of " +
                            ticket->tenant + " repeats line " + std::to_string(it->second));
      continue;
    }
    out.tickets.push_back(std::move(*ticket));
  }
  return out;
}

TicketOutcome outcomeFromUpdate(const TicketUpdate& u, const Ticket& ticket, const CostModel& costs) {
  TicketOutcome o;
  o.ticket_id = u.ticket_id;
  o.tenant = u.tenant;
  o.subject = ticket.subject;
  o.category = u.category;
  o.answer_category = u.answer_category;
  o.label = ticketLabel(ticket);
  o.routed_tier = u.route.routed_tier;
  for (const auto& m : u.route.moves) o.moves += (o.moves.empty() ? "" : ",") + m.reason;
  o.difficulty = u.difficulty;
  o.confidence = u.confidence;
  o.tier = u.tier;
  o.model = u.model;
  o.cache = u.cache;
  o.cache_source = u.cache_source_ticket_id;
  o.cost_micro_usd = u.cost_micro_usd;
  o.frontier_micro_usd = costs.frontier(ticket, u.category, u.usage);
  o.usage = u.usage;
  o.latency_ms = u.latency_ms;
  o.degraded = u.degraded;
  o.needs_human = u.needs_human;
  o.needs_human_reason = u.needs_human_reason;
  return o;
}

// Which ticket a dead letter was about: its payload is a ticket, a routed ticket or a result.
std::optional<std::string> deadLetterKey(const DeadLetter& d) {
  if (d.stage.rfind("results:", 0) == 0) return std::nullopt;  // one sink refused; the update went on
  const json payload = json::parse(d.payload, nullptr, false);
  if (!payload.is_object()) return std::nullopt;
  const json* t = payload.contains("ticket") && payload["ticket"].is_object() ? &payload["ticket"] : &payload;
  const std::string tenant = t->value("tenant", "");
  std::string id = t->value("id", "");
  if (id.empty()) id = t->value("ticket_id", "");
  if (tenant.empty() || id.empty()) return std::nullopt;
  return keyOf(tenant, id);
}

// The resume file: a header, then "submitted" and "outcome" lines, appended and flushed.
class StateFile {
 public:
  StateFile(const std::string& path, const std::string& source) : path_(path) {
    if (path_.empty()) {
      run_id_ = randomTraceId().substr(0, 16);
      return;
    }
    std::ifstream in(path_);
    for (std::string line; std::getline(in, line);) {
      const json j = json::parse(line, nullptr, false);
      if (!j.is_object()) continue;  // a torn last line from an interruption
      if (j.contains("run")) {
        run_id_ = j["run"].get<std::string>();
        if (j.value("source", "") != source)
          throw std::runtime_error(path_ + " belongs to a run over " + j.value("source", "?") + ", not " + source +
                                   " (choose another --state file)");
      } else if (j.contains("submitted")) {
        for (const auto& k : j["submitted"]) submitted_.insert(k.get<std::string>());
      } else if (j.contains("outcome")) {
        TicketOutcome o = outcomeFrom(j["outcome"]);
        outcomes_[keyOf(o.tenant, o.ticket_id)] = std::move(o);
      }
    }
    resumed_ = !run_id_.empty();
    out_.open(path_, std::ios::app);
    if (!out_) throw std::runtime_error("cannot write the state file " + path_);
    if (!resumed_) {
      run_id_ = randomTraceId().substr(0, 16);
      append({{"run", run_id_}, {"source", source}});
    }
  }

  bool resumed() const { return resumed_; }
  const std::string& runId() const { return run_id_; }
  const std::set<std::string>& submitted() const { return submitted_; }
  const std::map<std::string, TicketOutcome>& outcomes() const { return outcomes_; }

  void recordSubmitted(const std::vector<std::string>& keys) {
    std::lock_guard lock(mutex_);
    for (const auto& k : keys) submitted_.insert(k);
    append({{"submitted", keys}});
  }
  void recordOutcome(const TicketOutcome& o) {
    std::lock_guard lock(mutex_);
    outcomes_[keyOf(o.tenant, o.ticket_id)] = o;
    append({{"outcome", outcomeJson(o)}});
  }

 private:
  void append(const json& j) {
    if (out_.is_open()) out_ << j.dump(-1, ' ', false, json::error_handler_t::replace) << "\n" << std::flush;
  }
  std::string path_;
  std::string run_id_;
  bool resumed_ = false;
  std::set<std::string> submitted_;
  std::map<std::string, TicketOutcome> outcomes_;
  std::ofstream out_;
  std::mutex mutex_;
};

BacklogReport dryRun(const Config& config, const BacklogOptions& options, LoadedTickets loaded) {
  const auto started = Clock::now();
  BacklogReport report;
  report.source = options.path;
  report.dry_run = true;
  report.skipped = std::move(loaded.skipped);
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
            pool, config.cache, "dry:", std::make_shared<redis::HashingEmbedder>(config.cache.dimension));
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
  BacklogProgress progress;
  progress.total = loaded.tickets.size();
  for (const Ticket& t : loaded.tickets) {
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

}  // namespace

CostModel::CostModel(const Config& config, std::int64_t assumed_output_tokens)
    : config_(config), prompts_(provider::PromptSet::builtin()), output_tokens_(assumed_output_tokens) {}

const ModelConfig& CostModel::primaryOf(const std::string& tier) const {
  const TierConfig* t = config_.findTier(tier);
  if (!t) t = &config_.tiers.back();
  return *config_.findModel(t->models.front());
}

std::int64_t CostModel::promptTokens(const Ticket& ticket, const std::string& category,
                                     const ModelConfig& model) const {
  return provider::estimatePromptTokens(provider::buildModelRequest(prompts_, ticket, category, model));
}

MicroUsd CostModel::projected(const std::string& tier, const Ticket& ticket, const std::string& category) const {
  const ModelConfig& model = primaryOf(tier);
  return model.costMicroUsd(promptTokens(ticket, category, model),
                            std::min<std::int64_t>(output_tokens_, model.max_output_tokens));
}

MicroUsd CostModel::frontier(const Ticket& ticket, const std::string& category, const TokenUsage& usage) const {
  const ModelConfig& model = primaryOf(frontierTier());
  if (usage.input_tokens > 0) return model.costMicroUsd(usage.input_tokens, usage.output_tokens);
  return model.costMicroUsd(promptTokens(ticket, category, model),
                            std::min<std::int64_t>(output_tokens_, model.max_output_tokens));
}

namespace {

// Every ticket has its update; the shadow comparisons sampled from them may still be running:
// wait (at most ten minutes) until the shadow stage has consumed and finished all of them.
void waitForShadowDrain(const Pipeline& pipeline) {
  int quiet = 0;
  for (int i = 0; i < 3000 && quiet < 3; ++i) {
    bool drained = false;
    for (const auto& role : pipeline.stats()) {
      if (role.role != "shadow") continue;
      drained = role.stats.in_flight == 0 && role.stats.held == 0 && !role.stats.partitions.empty();
      for (const auto& p : role.stats.partitions) drained = drained && p.lag == 0;
    }
    quiet = drained ? quiet + 1 : 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

}  // namespace

BacklogReport runBacklog(Config config, const BacklogOptions& options) {
  LoadedTickets loaded = loadTickets(options);
  if (options.dry_run) {
    BacklogReport report = dryRun(config, options, std::move(loaded));
    for (const auto& t : config.tiers) report.tiers.push_back(t.name);
    report.frontier_tier = config.tiers.back().name;
    return report;
  }
  const auto started = Clock::now();
  StateFile state(options.state_path, options.path);

  std::unique_ptr<LocalStack> stack;
  std::unique_ptr<Pipeline> pipeline;
  NullBuffer null_buffer;
  std::ostream null_stream(&null_buffer);
  if (options.embedded) {
    LocalStackOptions local = options.local;
    local.ticket_labels = sim::labelsOf(loaded.tickets);  // the simulator answers right or wrong by them
    stack = std::make_unique<LocalStack>(config, local);
    PipelineOptions po;
    po.roles = allRoles(config);
    po.log_sink = options.pipeline_log ? options.pipeline_log : &null_stream;
    po.consumer_properties = LocalStack::consumerProperties();
    pipeline = std::make_unique<Pipeline>(config, std::move(po));
    pipeline->start();
  }
  const CostModel costs(config, options.assumed_output_tokens);

  std::map<std::string, const Ticket*> by_key;
  for (const auto& t : loaded.tickets) by_key[keyOf(t.tenant, t.id)] = &t;
  std::map<std::string, TicketOutcome> outcomes;
  for (const auto& [key, o] : state.outcomes())
    if (by_key.count(key)) outcomes[key] = o;
  // What to send: never what has an outcome; in embedded mode also what was lost with the
  // previous run's in-memory broker.
  std::vector<const Ticket*> to_submit;
  for (const auto& t : loaded.tickets) {
    const std::string key = keyOf(t.tenant, t.id);
    if (outcomes.count(key)) continue;
    if (!options.embedded && state.submitted().count(key)) continue;
    to_submit.push_back(&t);
  }

  kafka::Properties watcher_properties = {
      {"auto.offset.reset", state.resumed() || options.embedded ? "earliest" : "latest"}};
  if (options.embedded) watcher_properties.merge(LocalStack::consumerProperties());
  kafka::Consumer watcher(config.kafka, "triage", "ticketflow-triage-" + state.runId(), watcher_properties);
  if (auto st = watcher.subscribe({config.kafka.topics.updates, config.kafka.topics.dlq}); !st)
    throw std::runtime_error(st.error().message);
  // Join the group before producing, so that a new run reading from "latest" misses nothing.
  for (auto deadline = Clock::now() + options.idle_timeout; watcher.assignedPartitions() == 0;) {
    if (Clock::now() > deadline)
      throw std::runtime_error("the updates topic on " + config.kafka.bootstrap_servers + " was not assigned within " +
                               std::to_string(options.idle_timeout.count()) +
                               " s: is the broker reachable? (--idle-timeout sets the wait)");
    (void)watcher.poll(std::chrono::milliseconds(100));
  }

  std::atomic<std::size_t> submitted{loaded.tickets.size() - to_submit.size()};
  std::atomic<bool> submit_done{false}, submit_waiting{false}, stop_submitting{false};
  // Set by the submitter thread, read by this one.
  std::mutex submit_error_mutex;
  std::string submit_error;
  auto submitFailed = [&] {
    std::lock_guard lock(submit_error_mutex);
    return !submit_error.empty();
  };
  // The embedded broker forgets what it holds beyond its retention, consumed or not: keep the
  // unanswered tickets' messages (the ticket and what the stages add to it, in each topic) within
  // half of it, the other half a margin for uneven partitions.
  const std::size_t max_outstanding_bytes = options.embedded ? static_cast<std::size_t>(options.local.partitions) *
                                                                   kafka::MockBroker::kPartitionRetentionBytes / 2
                                                             : 0;
  constexpr std::size_t kStageOverheadBytes = 4096;  // classification, answer, costs, headers
  // Each ticket serialised once: its message, its key, and what it will hold in the broker.
  std::vector<std::string> payloads, submit_keys;
  std::map<std::string, std::size_t> footprint;  // read-only once the submitter runs
  for (const Ticket* t : to_submit) {
    payloads.push_back(toJson(*t));
    submit_keys.push_back(keyOf(t->tenant, t->id));
    footprint[submit_keys.back()] = payloads.back().size() + kStageOverheadBytes;
  }
  std::atomic<std::size_t> submitted_bytes{0}, answered_bytes{0};
  auto submitAll = [&] {
    // An unreachable broker ends the run after --idle-timeout, not librdkafka's 5 minutes.
    const auto broker_wait = std::chrono::duration_cast<std::chrono::milliseconds>(options.idle_timeout);
    kafka::Producer producer(config.kafka, "triage", {{"message.timeout.ms", std::to_string(broker_wait.count())}});
    const std::size_t batch =
        options.submit_rate > 0 ? std::max<std::size_t>(1, static_cast<std::size_t>(options.submit_rate / 10)) : 500;
    const auto t0 = Clock::now();
    for (std::size_t i = 0; i < to_submit.size() && !stop_submitting;) {
      std::vector<std::pair<std::string, std::string>> records;
      std::vector<std::string> keys;
      std::size_t batch_bytes = 0;
      for (std::size_t j = i; j < std::min(to_submit.size(), i + batch); ++j) {
        const std::size_t bytes = payloads[j].size() + kStageOverheadBytes;
        // A batch of large tickets is cut short, so that it never needs more than a quarter of the bound.
        if (max_outstanding_bytes > 0 && !keys.empty() && batch_bytes + bytes > max_outstanding_bytes / 4) break;
        records.emplace_back(to_submit[j]->id, std::move(payloads[j]));
        keys.push_back(submit_keys[j]);
        batch_bytes += bytes;
      }
      if (max_outstanding_bytes > 0) {
        submit_waiting = true;
        while (!stop_submitting && submitted_bytes - answered_bytes > 0 &&
               submitted_bytes - answered_bytes + batch_bytes > max_outstanding_bytes)
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
        submit_waiting = false;
        if (stop_submitting) break;
      }
      submitted_bytes += batch_bytes;
      if (auto st = producer.produceBatch(config.kafka.topics.inbound, records, broker_wait); !st) {
        std::lock_guard lock(submit_error_mutex);
        submit_error =
            st.error().message + " (broker " + config.kafka.bootstrap_servers + ", waited up to --idle-timeout)";
        break;
      }
      state.recordSubmitted(keys);
      submitted += keys.size();
      i += keys.size();
      if (options.submit_rate > 0) {
        const auto due = t0 + std::chrono::duration<double>(static_cast<double>(i) / options.submit_rate);
        std::this_thread::sleep_until(std::chrono::time_point_cast<Clock::duration>(due));
      }
    }
  };
  std::thread submitter([&] {
    try {
      submitAll();
    } catch (const std::exception& e) {  // never ends the process from a thread: reported below
      std::lock_guard lock(submit_error_mutex);
      submit_error = e.what();
    }
    submit_done = true;
  });

  std::ofstream updates_copy;
  if (!options.updates_copy.empty()) updates_copy.open(options.updates_copy, std::ios::trunc);
  std::map<std::pair<std::string, std::int32_t>, kafka::Message> last_seen;
  auto last_outcome = Clock::now(), last_commit = Clock::now(), last_progress = Clock::time_point{};
  BacklogProgress progress;
  progress.total = loaded.tickets.size();
  while (outcomes.size() < loaded.tickets.size()) {
    auto polled = watcher.poll(std::chrono::milliseconds(100));
    if (polled && polled->has_value()) {
      const kafka::Message& m = **polled;
      std::optional<TicketOutcome> outcome;
      std::string key;
      if (m.topic == config.kafka.topics.updates) {
        if (auto u = parseTicketUpdate(m.value)) {
          key = keyOf(u->tenant, u->ticket_id);
          if (auto it = by_key.find(key); it != by_key.end() && !outcomes.count(key)) {
            outcome = outcomeFromUpdate(*u, *it->second, costs);
            if (updates_copy.is_open()) updates_copy << m.value << "\n";
          }
        }
      } else if (auto d = parseDeadLetter(m.value)) {
        if (auto k = deadLetterKey(*d)) {
          key = *k;
          if (auto it = by_key.find(key); it != by_key.end() && !outcomes.count(key)) {
            TicketOutcome o;
            o.ticket_id = it->second->id;
            o.tenant = it->second->tenant;
            o.subject = it->second->subject;
            o.dead_lettered = true;
            o.error = d->stage + ": " + d->error;
            o.frontier_micro_usd = costs.frontier(*it->second, "", {});
            outcome = std::move(o);
          }
        }
      }
      if (outcome) {
        state.recordOutcome(*outcome);
        if (auto f = footprint.find(key); f != footprint.end()) answered_bytes += f->second;
        outcomes[key] = std::move(*outcome);
        last_outcome = Clock::now();
      }
      (void)watcher.storeOffset(m);
      last_seen[{m.topic, m.partition}] = m;
    }
    if (Clock::now() - last_commit > std::chrono::seconds(1)) {
      (void)watcher.commitStored();
      last_commit = Clock::now();
    }
    if (options.progress && Clock::now() - last_progress > std::chrono::milliseconds(200)) {
      progress.submitted = submitted;
      progress.done = outcomes.size();
      progress.seconds = secondsSince(started);
      options.progress(progress);
      last_progress = Clock::now();
    }
    if (submit_done && submitFailed()) break;
    if ((submit_done || submit_waiting) && Clock::now() - last_outcome > options.idle_timeout) break;
  }
  stop_submitting = true;
  submitter.join();
  (void)watcher.commitStored();
  watcher.close();
  if (submitFailed()) throw std::runtime_error("submitting tickets: " + submit_error);
  if (options.progress) {
    progress.submitted = submitted;
    progress.done = outcomes.size();
    progress.seconds = secondsSince(started);
    options.progress(progress);
  }

  BacklogReport report;
  report.source = options.path;
  report.skipped = std::move(loaded.skipped);
  for (const auto& t : config.tiers) report.tiers.push_back(t.name);
  report.frontier_tier = config.tiers.back().name;
  report.updates_topic = config.kafka.topics.updates;
  report.bootstrap_servers = config.kafka.bootstrap_servers;
  for (const auto& t : loaded.tickets) {
    auto it = outcomes.find(keyOf(t.tenant, t.id));
    if (it == outcomes.end()) {
      ++report.missing;
    } else {
      report.outcomes.push_back(it->second);
    }
  }
  if (pipeline) {
    if (config.shadow.enabled()) {
      waitForShadowDrain(*pipeline);
      if (auto table = pipeline->agreement().table()) report.shadow = std::move(*table);
      report.shadow_reference = config.shadow.reference_tier;
      if (!options.shadow_labels.empty()) {
        auto labels = pipeline->agreement().labels();
        if (!labels) throw std::runtime_error("reading the shadow labels: " + labels.error().message);
        std::ofstream out(options.shadow_labels, std::ios::trunc);
        for (const auto& l : *labels) out << l.toJson().dump() << "\n";
        if (!out.flush()) throw std::runtime_error(options.shadow_labels + ": cannot write the shadow labels");
      }
    }
    if (auto spend = pipeline->ledger().show()) {
      for (const auto& b : *spend) {
        if (b.scope == "global" && b.period == "day") report.ledger_settled = b.settled;
        if (b.scope == "tier" && b.name == kShadowTier && b.period == "day") report.shadow_spent = b.settled;
      }
      if (report.ledger_settled) *report.ledger_settled -= report.shadow_spent;
    }
    pipeline->requestStop();
    (void)pipeline->wait();
  }
  report.seconds = secondsSince(started);
  return report;
}

BacklogTotals totalsOf(const BacklogReport& report) {
  BacklogTotals t;
  std::vector<double> latencies;
  std::map<std::string, RepeatedIssue> clusters;  // tenant/source id
  std::map<std::string, const TicketOutcome*> by_key;
  for (const auto& o : report.outcomes) by_key[keyOf(o.tenant, o.ticket_id)] = &o;
  for (const auto& o : report.outcomes) {
    ++t.tickets;
    t.frontier_cost += o.frontier_micro_usd;
    if (o.dead_lettered) {
      ++t.dead_lettered;
      continue;
    }
    ++t.by_category_difficulty[o.category][difficultyName(o.difficulty)];
    ++t.by_tier[o.tier];
    t.cost_by_tier[o.tier] += o.cost_micro_usd;
    t.cost += o.cost_micro_usd;
    if (o.needs_human) ++t.needs_human;
    if (o.degraded) ++t.degraded;
    if (o.latency_ms >= 0) latencies.push_back(static_cast<double>(o.latency_ms));
    if (!report.dry_run) {
      const bool hit =
          o.cache == CacheStatus::kExact || o.cache == CacheStatus::kSemantic || o.cache == CacheStatus::kCoalesced;
      auto& flow = t.flow[{o.routed_tier.empty() ? o.tier : o.routed_tier, hit ? std::string("cache") : o.tier}];
      ++flow.tickets;
      if (hit) ++flow.reasons[cacheStatusName(o.cache)];
      std::stringstream moves(o.moves);
      for (std::string reason; std::getline(moves, reason, ',');)
        if (!reason.empty()) ++flow.reasons[reason];
      if (o.degraded) ++flow.reasons["fallback"];
    }
    if (!o.label.empty()) {
      ++t.classifier_vs_label.judged;
      t.classifier_vs_label.agreed += o.category == o.label;
      if (!o.answer_category.empty()) {
        auto& a = t.answer_vs_label_by_tier[o.tier];
        ++a.judged;
        a.agreed += o.answer_category == o.label;
      }
    }
    if (o.cache == CacheStatus::kExact || o.cache == CacheStatus::kSemantic || o.cache == CacheStatus::kCoalesced) {
      ++(o.cache == CacheStatus::kExact      ? t.cache_exact
         : o.cache == CacheStatus::kSemantic ? t.cache_semantic
                                             : t.cache_coalesced);
      auto source = by_key.find(keyOf(o.tenant, o.cache_source));
      if (source != by_key.end()) t.saved_by_cache += source->second->cost_micro_usd;
      RepeatedIssue& c = clusters[keyOf(o.tenant, o.cache_source)];
      if (c.tickets == 0) {
        c.tickets = 1;  // the source ticket itself
        c.source_ticket_id = o.cache_source;
        c.tenant = o.tenant;
        c.category = o.category;
        c.subject = source != by_key.end() ? source->second->subject : o.subject;
      }
      ++c.tickets;
    }
  }
  if (!latencies.empty()) {
    t.latency_p50_ms = static_cast<std::int64_t>(percentile(latencies, 0.50));  // whole ms in, whole ms out
    t.latency_p95_ms = static_cast<std::int64_t>(percentile(latencies, 0.95));
  }
  for (auto& [k, c] : clusters) t.repeated.push_back(c);
  std::stable_sort(t.repeated.begin(), t.repeated.end(),
                   [](const RepeatedIssue& a, const RepeatedIssue& b) { return a.tickets > b.tickets; });
  return t;
}

namespace {

std::string percent(std::size_t part, std::size_t whole) {
  std::ostringstream o;
  o << std::fixed << std::setprecision(1) << (whole ? 100.0 * double(part) / double(whole) : 0.0) << "%";
  return o.str();
}

std::string seconds(std::int64_t ms) {
  std::ostringstream o;
  o << std::fixed << std::setprecision(ms < 10'000 ? 2 : 1) << double(ms) / 1000.0 << " s";
  return o.str();
}

const char* const kLevels[] = {"easy", "medium", "hard"};

}  // namespace

std::string textSummary(const BacklogReport& r, const BacklogTotals& t) {
  std::ostringstream o;
  o << (r.dry_run ? "dry run (no model calls): " : "") << t.tickets << " tickets from " << r.source << " in "
    << std::fixed << std::setprecision(1) << r.seconds << " s\n";
  if (!r.skipped.empty()) {
    o << "  skipped " << r.skipped.size() << " rows:";
    for (std::size_t i = 0; i < std::min<std::size_t>(3, r.skipped.size()); ++i) o << "\n    " << r.skipped[i];
    if (r.skipped.size() > 3) o << "\n    ...";
    o << "\n";
  }
  if (r.missing)
    o << "  no outcome yet for " << r.missing
      << " submitted tickets (run again with the same --state to collect them)\n";
  std::size_t width = 10;
  for (const auto& [cat, levels] : t.by_category_difficulty) width = std::max(width, cat.size());
  o << "\n  " << std::left << std::setw(static_cast<int>(width)) << "category" << std::right;
  for (const char* level : kLevels) o << std::setw(8) << level;
  o << std::setw(8) << "total"
    << "\n";
  for (const auto& [cat, levels] : t.by_category_difficulty) {
    std::size_t total = 0;
    o << "  " << std::left << std::setw(static_cast<int>(width)) << cat << std::right;
    for (const char* level : kLevels) {
      const auto it = levels.find(level);
      const std::size_t n = it == levels.end() ? 0 : it->second;
      total += n;
      o << std::setw(8) << n;
    }
    o << std::setw(8) << total << "\n";
  }
  o << "\n  tiers:";
  for (const auto& tier : r.tiers) {
    const auto it = t.by_tier.find(tier);
    const std::size_t n = it == t.by_tier.end() ? 0 : it->second;
    o << "  " << tier << " " << n << " (" << percent(n, t.tickets) << ")";
  }
  o << "\n  cache: " << t.cacheHits() << " hits (" << percent(t.cacheHits(), t.tickets) << "): " << t.cache_exact
    << " exact, " << t.cache_semantic << " semantic"
    << (r.dry_run ? "" : ", " + std::to_string(t.cache_coalesced) + " coalesced (waited for a near-duplicate's answer)")
    << (r.dry_run && !r.cache_projected ? " (not projected: no redis-server)" : "") << "\n";
  if (!t.flow.empty()) {
    o << "  routed -> answered by (why it moved):\n";
    for (const auto& [from_to, flow] : t.flow) {
      o << "    " << from_to.first << " -> " << from_to.second << ": " << flow.tickets;
      std::string why;
      for (const auto& [reason, n] : flow.reasons) why += (why.empty() ? "" : ", ") + reason + " " + std::to_string(n);
      o << (why.empty() ? "" : " (" + why + ")") << "\n";
    }
  }
  if (t.classifier_vs_label.judged > 0) {
    o << "  against the file's labels (" << t.classifier_vs_label.judged << " labelled): classifier "
      << percent(t.classifier_vs_label.agreed, t.classifier_vs_label.judged);
    if (!t.answer_vs_label_by_tier.empty()) {
      BacklogTotals::Agreement all;
      std::string per_tier;
      for (const auto& tier : r.tiers) {
        auto it = t.answer_vs_label_by_tier.find(tier);
        if (it == t.answer_vs_label_by_tier.end()) continue;
        all.judged += it->second.judged;
        all.agreed += it->second.agreed;
        per_tier += "  " + tier + " " + percent(it->second.agreed, it->second.judged) + " of " +
                    std::to_string(it->second.judged);
      }
      o << "; answers " << percent(all.agreed, all.judged) << " of " << all.judged << " (" << per_tier.substr(2) << ")";
    }
    o << "\n";
  }
  if (r.shadow) {
    std::istringstream shadow(agreementText(*r.shadow, r.shadow_reference));
    for (std::string line; std::getline(shadow, line);) o << "  " << line << "\n";
    o << "    shadow calls cost " << formatUsd(r.shadow_spent)
      << " (budget bucket tier:shadow, not in the spend below)\n";
  }
  o << "  " << (r.dry_run ? "projected spend: " : "spend: ") << formatUsd(t.cost) << " vs "
    << formatUsd(t.frontier_cost) << " with every ticket on " << r.frontier_tier << ": " << std::fixed
    << std::setprecision(1) << 100.0 * t.savingShare() << "% saved\n";
  if (r.projected_range)
    o << "    calibrated by " << r.calibration_outcomes << " live outcomes: 95% range "
      << formatUsd(r.projected_range->first) << " to " << formatUsd(r.projected_range->second)
      << " (escalations and answer lengths as measured; per-tier"
      << " figures put each ticket's cost on the tier it is routed to)\n";
  o << "    by tier:";
  for (const auto& tier : r.tiers) {
    const auto it = t.cost_by_tier.find(tier);
    o << "  " << tier << " " << formatUsd(it == t.cost_by_tier.end() ? 0 : it->second);
  }
  o << "\n";
  if (t.latency_p50_ms)
    o << "  latency, intake to update: p50 " << seconds(*t.latency_p50_ms) << ", p95 " << seconds(*t.latency_p95_ms)
      << "\n";
  if (!r.dry_run)
    o << "  needs a human: " << t.needs_human << ", degraded (best effort): " << t.degraded
      << ", dead-lettered: " << t.dead_lettered << "\n";
  if (!t.repeated.empty()) {
    o << "  most repeated issues:\n";
    for (std::size_t i = 0; i < std::min<std::size_t>(5, t.repeated.size()); ++i) {
      const auto& c = t.repeated[i];
      o << "    " << c.tickets << " x " << c.tenant << "/" << c.source_ticket_id << " (" << c.category << ")\n";
    }
  }
  return o.str();
}

namespace {

std::string escape(const std::string& s) {
  return htmlEscape(s);
}

const char* const kLevelColours[] = {"#4caf50", "#ffb300", "#e53935"};

// Horizontal stacked bars: tickets per category, split by difficulty.
std::string categoryChart(const BacklogTotals& t) {
  std::size_t max_total = 1;
  for (const auto& [cat, levels] : t.by_category_difficulty) {
    std::size_t n = 0;
    for (const auto& [l, c] : levels) n += c;
    max_total = std::max(max_total, n);
  }
  const int row = 26, label = 200, bar = 460;
  const int height = row * static_cast<int>(t.by_category_difficulty.size()) + 40;
  std::ostringstream s;
  s << "<svg class=\"chart\" id=\"chart-categories\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" << label + bar + 60
    << "\" height=\"" << height << "\" role=\"img\" aria-label=\"Tickets per category and difficulty\">\n";
  int y = 10;
  for (const auto& [cat, levels] : t.by_category_difficulty) {
    s << "<text x=\"" << label - 8 << "\" y=\"" << y + 16 << "\" text-anchor=\"end\">" << escape(cat) << "</text>\n";
    double x = label;
    std::size_t total = 0;
    for (int i = 0; i < 3; ++i) {
      const auto it = levels.find(kLevels[i]);
      const std::size_t n = it == levels.end() ? 0 : it->second;
      total += n;
      const double w = double(bar) * double(n) / double(max_total);
      if (n)
        s << "<rect class=\"bar\" x=\"" << x << "\" y=\"" << y << "\" width=\"" << w << "\" height=\"" << row - 6
          << "\" fill=\"" << kLevelColours[i] << "\"><title>" << escape(cat) << ", " << kLevels[i] << ": " << n
          << "</title></rect>\n";
      x += w;
    }
    s << "<text x=\"" << x + 6 << "\" y=\"" << y + 16 << "\">" << total << "</text>\n";
    y += row;
  }
  int lx = label;
  for (int i = 0; i < 3; ++i) {
    s << "<rect x=\"" << lx << "\" y=\"" << y + 6 << "\" width=\"12\" height=\"12\" fill=\"" << kLevelColours[i]
      << "\"/><text x=\"" << lx + 16 << "\" y=\"" << y + 17 << "\">" << kLevels[i] << "</text>\n";
    lx += 90;
  }
  s << "</svg>\n";
  return s.str();
}

// Vertical bars: spend per tier, the total, and the same tickets all on the frontier tier.
std::string costChart(const BacklogReport& r, const BacklogTotals& t) {
  std::vector<std::pair<std::string, MicroUsd>> bars;
  for (const auto& tier : r.tiers) {
    const auto it = t.cost_by_tier.find(tier);
    bars.emplace_back(tier, it == t.cost_by_tier.end() ? 0 : it->second);
  }
  bars.emplace_back("total", t.cost);
  bars.emplace_back("all " + r.frontier_tier, t.frontier_cost);
  MicroUsd max = 1;
  for (const auto& [n, v] : bars) max = std::max(max, v);
  const int col = 110, chart_h = 220, top = 20;
  std::ostringstream s;
  s << "<svg class=\"chart\" id=\"chart-cost\" xmlns=\"http://www.w3.org/2000/svg\" width=\""
    << col * static_cast<int>(bars.size()) + 40 << "\" height=\"" << chart_h + top + 50
    << "\" role=\"img\" aria-label=\"Spend per tier against all-frontier\">\n";
  int x = 20;
  for (std::size_t i = 0; i < bars.size(); ++i) {
    const double h = double(chart_h) * double(bars[i].second) / double(max);
    const bool frontier = i + 1 == bars.size();
    s << "<rect class=\"bar\" x=\"" << x << "\" y=\"" << top + chart_h - h << "\" width=\"" << col - 30
      << "\" height=\"" << h << "\" fill=\""
      << (frontier               ? "#9e9e9e"
          : i + 2 == bars.size() ? "#1e88e5"
                                 : "#64b5f6")
      << "\"><title>" << escape(bars[i].first) << ": " << formatUsd(bars[i].second) << "</title></rect>\n"
      << "<text x=\"" << x + (col - 30) / 2 << "\" y=\"" << top + chart_h - h - 4 << "\" text-anchor=\"middle\">"
      << formatUsd(bars[i].second) << "</text>\n"
      << "<text x=\"" << x + (col - 30) / 2 << "\" y=\"" << top + chart_h + 18 << "\" text-anchor=\"middle\">"
      << escape(bars[i].first) << "</text>\n";
    x += col;
  }
  s << "</svg>\n";
  return s.str();
}

}  // namespace

std::string htmlReport(const BacklogReport& r, const BacklogTotals& t) {
  std::ostringstream h;
  const std::size_t hits = t.cacheHits();
  h << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>ticketflow triage report: "
    << escape(r.source) << "</title>\n<style>\n"
    << "body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}"
       "h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em}"
       "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
       "th{background:#f3f3f3}td.n{text-align:right}.chart text{font-size:12px;fill:#333}"
       ".kpi{display:inline-block;margin:0 2em 1em 0}.kpi b{display:block;font-size:1.6em}"
       "td.low{background:#fdecea}tr.total td{font-weight:600}\n"
    << "</style></head><body>\n";
  h << "<h1>Triage report: " << escape(r.source) << "</h1>\n<p>"
    << (r.dry_run ? "Dry run: classified and priced locally, no model calls. " : "") << t.tickets << " tickets in "
    << std::fixed << std::setprecision(1) << r.seconds << " s.";
  if (!r.skipped.empty()) h << " " << r.skipped.size() << " rows skipped (listed at the end).";
  if (r.missing) h << " " << r.missing << " submitted tickets had no outcome yet.";
  h << "</p>\n<div>"
    << "<span class=\"kpi\"><b>" << formatUsd(t.cost) << "</b>" << (r.dry_run ? "projected spend" : "spend")
    << "</span>"
    << "<span class=\"kpi\"><b>" << formatUsd(t.frontier_cost) << "</b>all on " << escape(r.frontier_tier) << "</span>"
    << "<span class=\"kpi\"><b>" << std::setprecision(1) << 100.0 * t.savingShare() << "%</b>saved</span>"
    << "<span class=\"kpi\"><b>" << percent(hits, t.tickets) << "</b>cache hits</span>"
    << "<span class=\"kpi\"><b>" << (r.dry_run ? std::string("n/a") : std::to_string(t.needs_human))
    << "</b>need a human</span></div>\n";
  h << "<h2>Tickets per category and difficulty</h2>\n" << categoryChart(t);
  h << "<table><tr><th>category</th><th>easy</th><th>medium</th><th>hard</th><th>total</th></tr>\n";
  for (const auto& [cat, levels] : t.by_category_difficulty) {
    std::size_t total = 0;
    h << "<tr><td>" << escape(cat) << "</td>";
    for (const char* level : kLevels) {
      const auto it = levels.find(level);
      const std::size_t n = it == levels.end() ? 0 : it->second;
      total += n;
      h << "<td class=\"n\">" << n << "</td>";
    }
    h << "<td class=\"n\">" << total << "</td></tr>\n";
  }
  h << "</table>\n<h2>" << (r.dry_run ? "Projected cost" : "Cost") << " per tier against every ticket on "
    << escape(r.frontier_tier) << "</h2>\n"
    << costChart(r, t);
  h << "<table><tr><th>tier</th><th>tickets</th><th>spend</th></tr>\n";
  for (const auto& tier : r.tiers) {
    const auto n = t.by_tier.count(tier) ? t.by_tier.at(tier) : 0;
    const auto c = t.cost_by_tier.count(tier) ? t.cost_by_tier.at(tier) : 0;
    h << "<tr><td>" << escape(tier) << "</td><td class=\"n\">" << n << "</td><td class=\"n\">" << formatUsd(c)
      << "</td></tr>\n";
  }
  h << "</table>\n";
  if (!t.flow.empty()) {
    h << "<h2>Routed tier to the tier that answered</h2>\n<table><tr><th>routed to</th><th>answered by</th>"
         "<th>tickets</th><th>why it moved</th></tr>\n";
    for (const auto& [from_to, flow] : t.flow) {
      std::string why;
      for (const auto& [reason, n] : flow.reasons) why += (why.empty() ? "" : ", ") + reason + " " + std::to_string(n);
      h << "<tr><td>" << escape(from_to.first) << "</td><td>" << escape(from_to.second) << "</td><td class=\"n\">"
        << flow.tickets << "</td><td>" << escape(why) << "</td></tr>\n";
    }
    h << "</table>\n";
  }
  if (t.classifier_vs_label.judged > 0) {
    h << "<h2>Against the file's own labels</h2>\n<table><tr><th>who</th><th>agrees</th><th>of</th></tr>\n"
      << "<tr><td>classifier</td><td class=\"n\">"
      << percent(t.classifier_vs_label.agreed, t.classifier_vs_label.judged) << "</td><td class=\"n\">"
      << t.classifier_vs_label.judged << "</td></tr>\n";
    for (const auto& tier : r.tiers)
      if (auto it = t.answer_vs_label_by_tier.find(tier); it != t.answer_vs_label_by_tier.end())
        h << "<tr><td>answers at " << escape(tier) << "</td><td class=\"n\">"
          << percent(it->second.agreed, it->second.judged) << "</td><td class=\"n\">" << it->second.judged
          << "</td></tr>\n";
    h << "</table>\n";
  }
  if (r.shadow)
    h << agreementHtml(*r.shadow, r.shadow_reference) << "<p>Shadow calls cost " << formatUsd(r.shadow_spent)
      << " (budget bucket tier:shadow), not counted in the spend above.</p>\n";
  if (t.latency_p50_ms)
    h << "<p>Latency from intake to update: p50 " << seconds(*t.latency_p50_ms) << ", p95 "
      << seconds(*t.latency_p95_ms) << ".</p>\n";
  h << "<h2>Most repeated issues (cache clusters)</h2>\n";
  if (t.repeated.empty()) {
    h << "<p>No ticket was answered from another's answer.</p>\n";
  } else {
    h << "<table id=\"repeated\"><tr><th>tickets</th><th>tenant</th><th>first "
         "ticket</th><th>category</th><th>subject</th></tr>\n";
    for (std::size_t i = 0; i < std::min<std::size_t>(20, t.repeated.size()); ++i) {
      const auto& c = t.repeated[i];
      h << "<tr><td class=\"n\">" << c.tickets << "</td><td>" << escape(c.tenant) << "</td><td>"
        << escape(c.source_ticket_id) << "</td><td>" << escape(c.category) << "</td><td>" << escape(c.subject)
        << "</td></tr>\n";
    }
    h << "</table>\n";
  }
  h << "<h2>Tickets that need a human</h2>\n";
  std::size_t listed = 0;
  for (const auto& o : r.outcomes) {
    if (!o.needs_human && !o.dead_lettered) continue;
    if (listed == 0)
      h << "<table "
           "id=\"needs-human\"><tr><th>ticket</th><th>tenant</th><th>category</th><th>tier</th><th>why</th></tr>\n";
    if (++listed > 500) break;
    h << "<tr><td>" << escape(o.ticket_id) << "</td><td>" << escape(o.tenant) << "</td><td>" << escape(o.category)
      << "</td><td>" << escape(o.tier) << "</td><td>"
      << escape(o.dead_lettered ? "dead-lettered: " + o.error : o.needs_human_reason) << "</td></tr>\n";
  }
  h << (listed      ? "</table>\n"
        : r.dry_run ? "<p>A dry run does not ask models, so it cannot tell.</p>\n"
                    : "<p>None.</p>\n");
  if (!r.skipped.empty()) {
    h << "<h2>Skipped rows</h2>\n<ul>\n";
    for (const auto& s : r.skipped) h << "<li>" << escape(s) << "</li>\n";
    h << "</ul>\n";
  }
  h << "</body></html>\n";
  return h.str();
}

}  // namespace ticketflow::pipeline
