// The stage engine's poll loop and an item's life: admit, run the handler, produce its outputs,
// done (engine.hpp names the other rooms).
#include <cstdio>
#include <stdexcept>
#include <thread>

#include "engine.hpp"
#include "ticketflow/core/crypto.hpp"
#include "ticketflow/core/signals.hpp"

namespace ticketflow::stage {

struct Completion::State {
  std::shared_ptr<EventQueue> events;
  std::uint64_t item = 0;
  int run = 0;
  std::atomic<bool> answered{false};

  void answer(Event event) {
    if (answered.exchange(true)) return;
    event.kind = EventKind::kHandlerDone;
    event.item = item;
    event.run = run;
    events->push(std::move(event));
  }
  ~State() {
    Event e;
    e.error = Error{ErrorCode::kInternal, "handler dropped its completion without answering", true};
    answer(std::move(e));
  }
};

void Completion::succeed(std::vector<OutputRecord> outputs, std::function<void()> after_ack) const {
  Event e;
  e.outputs = std::move(outputs);
  e.after_ack = std::move(after_ack);
  state_->answer(std::move(e));
}

void Completion::fail(Error error) const {
  Event e;
  e.error = std::move(error);
  state_->answer(std::move(e));
}

Stage::Impl::Impl(const KafkaConfig& kafka_config, StageOptions opts, Handler h)
    : options(std::move(opts)),
      handler(std::move(h)),
      events(std::make_shared<EventQueue>()),
      rng(std::random_device{}()),
      backpressure(options.limits.max_in_flight) {
  if (options.input_topics.empty()) throw std::invalid_argument("stage " + options.name + ": no input topics");
  if (options.limits.max_in_flight < 1) throw std::invalid_argument("stage.max_in_flight must be at least 1");
  if (options.limits.worker_threads < 1) throw std::invalid_argument("stage.worker_threads must be at least 1");
  const std::string role = "stage-" + options.name;

  kafka::Properties cp = kafka::clientProperties(kafka_config, role,
                                                 {{"group.id", options.group},
                                                  {"enable.auto.offset.store", "false"},
                                                  {"enable.auto.commit", "false"},
                                                  // A committed offset the log no longer holds
                                                  // (retention, a size limit) is an error we
                                                  // count and log (offsetGone), never a silent
                                                  // skip; a group without one starts at the log
                                                  // start (GroupConsumer says so explicitly).
                                                  {"auto.offset.reset", "error"},
                                                  {"enable.partition.eof", "false"},
                                                  {"partition.assignment.strategy", "cooperative-sticky"},
                                                  // Prefetch is bounded: the window holds the
                                                  // work, and more queued here is only memory
                                                  // (2 MiB: same throughput as 16, 18 MiB less
                                                  // RSS in bench pipeline's five consumers).
                                                  {"queued.max.messages.kbytes", "2048"}});
  for (const auto& [k, v] : options.consumer_properties) cp[k] = v;
  consumer = std::make_unique<kafka::GroupConsumer>(cp, *this, [this](const std::string& text) { logLine(text); });
  events->setWake([c = consumer.get()] { c->wake(); });
  try {
    kafka::Properties pp = kafka::clientProperties(
        kafka_config, role, {{"enable.idempotence", "true"}, {"acks", "all"}, {"linger.ms", "5"}});
    for (const auto& [k, v] : options.producer_properties) pp[k] = v;
    producer = std::make_unique<kafka::AsyncProducer>(
        pp,
        [queue = events](std::uint64_t item, std::optional<Error> error) {
          Event e;
          e.kind = EventKind::kProduced;
          e.item = item;
          e.error = std::move(error);
          queue->push(std::move(e));
        },
        "tf-dr-" + options.name);
    workers = std::make_unique<WorkerPool>(options.limits.worker_threads, "tf-work-" + options.name);
    fetch_waker = std::make_unique<FetchWaker>(*consumer, "tf-wake-" + options.name);
  } catch (...) {  // a failed start leaves no queue or group membership behind
    events->setWake(nullptr);
    consumer->close();
    throw;
  }
}

Stage::Impl::~Impl() {
  fetch_waker.reset();
  workers->stop();
  timers.reset();
  producer.reset();  // stops its report thread, then flushes
  events->setWake(nullptr);
  consumer->close();
}

void Stage::Impl::logLine(const std::string& text) const {
  if (options.log) {
    options.log(text);
  } else {
    std::fprintf(stderr, "stage %s: %s\n", options.name.c_str(), text.c_str());
  }
}

Status Stage::Impl::run() {
  if (Status subscribed = consumer->subscribe(options.input_topics); !subscribed) return subscribed;
  next_commit_at = std::chrono::steady_clock::now() + std::chrono::milliseconds(options.limits.commit_interval_ms);
  while (!stop_requested.load()) {
    processEvents();
    expireOutageHolds();
    admitHeld();
    const bool window_full = applyBackpressure();
    maybeCommit();
    maybePublish();
    if (window_full) {
      events->waitFor(std::chrono::milliseconds(5));
      continue;
    }
    kafka::Polled polled = consumer->poll(std::chrono::milliseconds(events->empty() ? 50 : 0));
    switch (polled.kind) {
      case kafka::Polled::Kind::kNothing:
        if (fetch_waker->prefetchDrained(!backpressure.pausedAll() && !partitions.empty()))
          fetch_waker->wakeNext(fetchingPartitions());
        break;
      case kafka::Polled::Kind::kMessage:
        fetch_waker->messagePolled();
        consumed(std::move(polled.message));
        break;
      case kafka::Polled::Kind::kOffsetGone:
        fetch_waker->messagePolled();
        offsetGone(polled.partition);
        break;
      case kafka::Polled::Kind::kError:
        fetch_waker->messagePolled();
        logLine("consume: " + polled.error);
        break;
    }
  }
  shutdown();
  return {};
}

void Stage::Impl::consumed(kafka::Message message) {
  ++stats.consumed;
  auto it = partitions.find({message.topic, message.partition});
  if (it == partitions.end() || it->second.revoking) return;  // no longer ours: the next owner redoes it
  it->second.fetched_to = std::max(it->second.fetched_to, message.offset + 1);
  if (in_flight >= options.limits.max_in_flight || !held.empty()) {
    held.push_back(std::move(message));  // arrived before the pause took effect
    return;
  }
  admit(std::move(message), it->second);
}

void Stage::Impl::admitHeld() {
  while (!held.empty() && in_flight < options.limits.max_in_flight) {
    kafka::Message m = std::move(held.front());
    held.pop_front();
    auto it = partitions.find({m.topic, m.partition});
    if (it == partitions.end() || it->second.revoking) continue;
    admit(std::move(m), it->second);
  }
}

void Stage::Impl::admit(kafka::Message message, Partition& partition) {
  if (partition.offsets.track(message.offset)) {
    ++stats.skipped_done;
    return;
  }
  auto item = std::make_unique<Item>();
  item->id = next_id++;
  item->tp = {message.topic, message.partition};
  item->offset = message.offset;
  item->key = message.key.value_or("");
  item->trace_id = message.header(kTraceIdHeader).value_or("");
  auto delivery = std::make_shared<Delivery>();
  delivery->message = std::move(message);
  delivery->trace_id = item->trace_id;
  item->delivery = std::move(delivery);
  ++partition.in_flight;
  ++in_flight;
  if (in_flight > stats.max_in_flight_seen) stats.max_in_flight_seen = in_flight;
  Item* raw = item.get();
  items.emplace(raw->id, std::move(item));
  if (keys.admit(raw->id, raw->key)) start(*raw);
}

// `rerun`: a held message runs again after its outage, with the same attempt number.
void Stage::Impl::start(Item& item, bool rerun) {
  if (!rerun) ++item.attempt;
  ++item.runs;
  item.state = ItemState::kRunning;
  item.run_began = std::chrono::steady_clock::now();
  if (item.runs > 1) {
    // The handler may still hold the previous run's delivery: give this one its own.
    auto again = std::make_shared<Delivery>(*item.delivery);
    again->attempt = item.attempt;
    item.delivery = std::move(again);
  }
  auto state = std::make_shared<Completion::State>();
  state->events = events;
  state->item = item.id;
  state->run = item.runs;
  auto run = [this, d = item.delivery, c = Completion(std::move(state))] {
    try {
      handler(d, c);
    } catch (const std::exception& e) {
      c.fail(Error::internal(std::string("handler threw: ") + e.what()));
    }
  };
  if (options.handler_hands_off)
    run();
  else
    workers->submit(std::move(run));
}

void Stage::Impl::processEvents() {
  for (Event& e : events->take()) {
    auto it = items.find(e.item);
    if (it == items.end()) continue;  // abandoned, or a late answer
    Item& item = *it->second;
    switch (e.kind) {
      case EventKind::kHandlerDone:
        if (item.state != ItemState::kRunning || item.runs != e.run) break;
        // A probe that got past its outage ends the hold: the dependency is back. For the
        // broker that is known only once it acknowledges the outputs (outputsSettled).
        if (!item.outage.empty() && (e.error ? e.error->outage != item.outage : item.outage != "kafka"))
          leaveOutage(item, true);
        if (e.error) {
          failed(item, *e.error);
        } else {
          item.after_ack = std::move(e.after_ack);
          produceOutputs(item, std::move(e.outputs));
        }
        break;
      case EventKind::kAfterAckDone:
        if (item.state != ItemState::kAfterAck) break;
        succeeded(item);
        break;
      case EventKind::kRetryDue:
        if (item.state != ItemState::kRetryWait || !mayStart(item)) break;
        if (item.dead_lettering) {
          produceDeadLetter(item);
        } else {
          start(item);
        }
        break;
      case EventKind::kProbeDue:
        if (item.state != ItemState::kOutageWait || !mayStart(item)) break;
        start(item, /*rerun=*/true);
        break;
      case EventKind::kProduced:
        if (item.state != ItemState::kProducing) break;
        if (e.error) item.produce_error = e.error;
        if (--item.outputs_pending == 0) outputsSettled(item);
        break;
    }
  }
}

void Stage::Impl::produceOutputs(Item& item, std::vector<OutputRecord> outputs) {
  item.state = ItemState::kProducing;
  item.produce_error.reset();
  item.outputs_pending = 0;
  if (outputs.empty()) {
    outputsSettled(item);
    return;
  }
  const std::string attempt = std::to_string(item.attempt);
  int issued = 0;
  for (OutputRecord& out : outputs) {
    const std::string& key = out.key.empty() ? item.key : out.key;
    bool has_trace = false, has_attempt = false;
    for (const auto& h : out.headers) {
      has_trace = has_trace || h.name == kTraceIdHeader;
      has_attempt = has_attempt || h.name == kAttemptHeader;
    }
    // Only a well-formed trace id is carried on: a header of any size would ride on every output.
    if (!has_trace && isTraceId(item.trace_id)) out.headers.push_back({kTraceIdHeader, item.trace_id});
    if (!has_attempt) out.headers.push_back({kAttemptHeader, attempt});
    if (auto refused = producer->produce(out.topic, out.partition, key, out.value, out.headers, item.id)) {
      item.produce_error = std::move(refused);
      break;
    }
    ++issued;
  }
  item.outputs_pending = issued;
  if (issued == 0) outputsSettled(item);
}

void Stage::Impl::outputsSettled(Item& item) {
  if (item.produce_error) {
    logLine(item.produce_error->message);
    // Outputs that did reach the broker are produced again on the retry: at-least-once.
    if (item.dead_lettering) {
      // Too large for the topic: smaller at once. Anything else: the topic is unavailable.
      if (!item.produce_error->retriable && cutDeadLetter(item)) {
        produceDeadLetter(item);
      } else {
        scheduleRetry(item);
      }
    } else {
      failed(item, *item.produce_error);
    }
    return;
  }
  // A message held because the broker did not take its outputs is through once it has.
  if (item.outage == "kafka") leaveOutage(item, true);
  if (item.dead_lettering) {
    ++stats.dead_lettered;
    stats.last_done_at = std::chrono::steady_clock::now();
    finish(item);
    return;
  }
  if (item.after_ack && options.handler_hands_off) {
    // A handler that never blocks has hooks that never block: run here, sparing two hand-offs.
    runAfterAck(item.after_ack);
    item.after_ack = nullptr;
  }
  if (item.after_ack) {
    // The hook runs off the poll thread; the item (and so its key's next message) waits for it.
    item.state = ItemState::kAfterAck;
    auto queue = events;
    workers->submit([this, hook = std::move(item.after_ack), queue, id = item.id] {
      runAfterAck(hook);
      Event done;
      done.kind = EventKind::kAfterAckDone;
      done.item = id;
      queue->push(std::move(done));
    });
    item.after_ack = nullptr;
    return;
  }
  succeeded(item);
}

void Stage::Impl::runAfterAck(const std::function<void()>& hook) {
  try {
    hook();
  } catch (const std::exception& e) {
    logLine(std::string("after-ack hook threw: ") + e.what());
  }
}

void Stage::Impl::succeeded(Item& item) {
  ++stats.succeeded;
  stats.last_done_at = std::chrono::steady_clock::now();
  last_success_run_began = std::max(last_success_run_began, item.run_began);
  finish(item);
}

void Stage::Impl::finish(Item& item) {
  auto pit = partitions.find(item.tp);
  if (pit != partitions.end()) {
    pit->second.offsets.complete(item.offset);
    --pit->second.in_flight;
  }
  --in_flight;
  const std::optional<std::uint64_t> next_of_key = keys.finish(item.id, item.key);
  items.erase(item.id);  // `item` is gone from here on
  if (next_of_key) {
    Item& next = *items.at(*next_of_key);
    if (mayStart(next)) start(next);
  }
}

// New work starts only in partitions we keep: not in ones being revoked or at shutdown.
bool Stage::Impl::mayStart(const Item& item) const {
  auto it = partitions.find(item.tp);
  return it != partitions.end() && !it->second.revoking;
}

void Stage::Impl::maybePublish() {
  const auto now = std::chrono::steady_clock::now();
  if (now < next_publish_at) return;
  next_publish_at = now + std::chrono::milliseconds(20);
  publish();
}

void Stage::Impl::publish() {
  StageStats s = stats;
  s.in_flight = in_flight;
  const auto now_steady = std::chrono::steady_clock::now();
  for (const auto& [cause, totals] : outage_totals) {
    OutageStats o = totals;
    o.cause = cause;
    if (auto it = outages.find(cause); it != outages.end()) {
      o.held_now = static_cast<std::int64_t>(it->second.waiting.size()) + (it->second.probe ? 1 : 0);
      o.current_seconds = std::chrono::duration<double>(now_steady - it->second.since).count();
      o.last_error = it->second.last_error;
      o.probes = it->second.probes;
    }
    s.outages.push_back(std::move(o));
  }
  s.held = static_cast<std::int64_t>(held.size());
  for (const auto& [tp, p] : partitions) {
    PartitionStats ps;
    ps.topic = tp.first;
    ps.partition = tp.second;
    ps.in_flight = p.in_flight;
    ps.next_commit = p.offsets.nextCommit();
    ps.paused = p.paused_by_us;
    const kafka::Watermarks w = fetch_waker->watermarks(tp);
    if (w.high >= 0) {
      ps.high_watermark = w.high;
      // Nothing consumed or committed yet: the group starts at the log start (earliest).
      const std::int64_t position = ps.next_commit >= 0 ? ps.next_commit : w.low;
      if (position >= 0) ps.lag = std::max<std::int64_t>(0, w.high - position);
    }
    s.partitions.push_back(std::move(ps));
  }
  fetch_waker->queryWanted();
  std::lock_guard lock(published_mutex);
  published = std::move(s);
}

Stage::Stage(const KafkaConfig& kafka, StageOptions options, Handler handler)
    : impl_(std::make_unique<Impl>(kafka, std::move(options), std::move(handler))) {}

Stage::~Stage() = default;

Status Stage::run() {
  return impl_->run();
}

void Stage::requestStop() {
  impl_->stop_requested = true;
  impl_->consumer->wake();
}

StageStats Stage::stats() const {
  std::lock_guard lock(impl_->published_mutex);
  return impl_->published;
}

Status runUntilTerminated(Stage& stage) {
  std::atomic<bool> finished{false};
  std::thread waiter([&] {
    while (!finished.load()) {
      if (waitForTerminationSignal(std::chrono::milliseconds(200))) {
        stage.requestStop();
        return;
      }
    }
  });
  Status status = stage.run();
  finished = true;
  waiter.join();
  return status;
}

}  // namespace ticketflow::stage
