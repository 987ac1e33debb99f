#include "live_run.hpp"

#include <algorithm>
#include <atomic>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

#include <nlohmann/json.hpp>

#include "cost_model.hpp"
#include "pipeline/pipeline.hpp"
#include "sim/simulator.hpp"
#include "state_file.hpp"
#include "ticketflow/kafka/client.hpp"

namespace ticketflow::triage {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// A stream that drops what it is given (pipeline logs nobody asked for).
class NullBuffer : public std::streambuf {
 protected:
  int overflow(int c) override { return c; }
};

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
  return ticketKey(tenant, id);
}

// Every ticket has its update; the shadow comparisons sampled from them may still be running:
// wait (at most ten minutes) until the shadow stage has consumed and finished all of them.
void waitForShadowDrain(const pipeline::Pipeline& pipeline) {
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

TriageReport liveRun(Config config, const TriageOptions& options, const std::vector<Ticket>& tickets) {
  const auto started = Clock::now();
  StateFile state(options.state_path, options.path);

  std::unique_ptr<local_stack::LocalStack> stack;
  std::unique_ptr<pipeline::Pipeline> pipeline;
  NullBuffer null_buffer;
  std::ostream null_stream(&null_buffer);
  if (options.embedded) {
    local_stack::LocalStackOptions local = options.local;
    local.ticket_labels = sim::labelsOf(tickets);  // the simulator answers right or wrong by them
    stack = std::make_unique<local_stack::LocalStack>(config, local);
    pipeline::PipelineOptions po;
    po.roles = pipeline::allRoles(config);
    po.log_sink = options.pipeline_log ? options.pipeline_log : &null_stream;
    po.consumer_properties = local_stack::LocalStack::consumerProperties();
    pipeline = std::make_unique<pipeline::Pipeline>(config, std::move(po));
    pipeline->start();
  }
  const CostModel costs(config, options.assumed_output_tokens);

  std::map<std::string, const Ticket*> by_key;
  for (const auto& t : tickets) by_key[ticketKey(t.tenant, t.id)] = &t;
  std::map<std::string, TicketOutcome> outcomes;
  for (const auto& [key, o] : state.outcomes())
    if (by_key.count(key)) outcomes[key] = o;
  // What to send: never what has an outcome; in embedded mode also what was lost with the
  // previous run's in-memory broker.
  std::vector<const Ticket*> to_submit;
  for (const auto& t : tickets) {
    const std::string key = ticketKey(t.tenant, t.id);
    if (outcomes.count(key)) continue;
    if (!options.embedded && state.submitted().count(key)) continue;
    to_submit.push_back(&t);
  }

  kafka::Properties watcher_properties = {
      {"auto.offset.reset", state.resumed() || options.embedded ? "earliest" : "latest"}};
  if (options.embedded) watcher_properties.merge(local_stack::LocalStack::consumerProperties());
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

  std::atomic<std::size_t> submitted{tickets.size() - to_submit.size()};
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
    submit_keys.push_back(ticketKey(t->tenant, t->id));
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
  TriageProgress progress;
  progress.total = tickets.size();
  while (outcomes.size() < tickets.size()) {
    auto polled = watcher.poll(std::chrono::milliseconds(100));
    if (polled && polled->has_value()) {
      const kafka::Message& m = **polled;
      std::optional<TicketOutcome> outcome;
      std::string key;
      if (m.topic == config.kafka.topics.updates) {
        if (auto u = parseTicketUpdate(m.value)) {
          key = ticketKey(u->tenant, u->ticket_id);
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

  TriageReport report;
  report.source = options.path;
  report.updates_topic = config.kafka.topics.updates;
  report.bootstrap_servers = config.kafka.bootstrap_servers;
  for (const auto& t : tickets) {
    auto it = outcomes.find(ticketKey(t.tenant, t.id));
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

}  // namespace ticketflow::triage
