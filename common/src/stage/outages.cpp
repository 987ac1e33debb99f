// Retries, holds for an outage and dead letters: what the engine does with a run that failed.
#include <algorithm>
#include <random>

#include "engine.hpp"
#include "ticketflow/core/clock.hpp"
#include "ticketflow/core/crypto.hpp"
#include "ticketflow/core/utf8.hpp"

namespace ticketflow::stage {

std::chrono::milliseconds Stage::Impl::backoff(int attempt) {
  const auto& l = options.limits;
  double d = l.retry_backoff_initial_ms;
  for (int i = 1; i < attempt && d < l.retry_backoff_max_ms; ++i) d *= 2;
  if (d > l.retry_backoff_max_ms) d = l.retry_backoff_max_ms;
  // "Equal jitter": half fixed, half random, so retries of many keys spread out.
  std::uniform_real_distribution<double> jitter(0.5, 1.0);
  return std::chrono::milliseconds(static_cast<std::int64_t>(d * jitter(rng)));
}

// `at_least`: a server's or breaker's retry-after, capped so a bogus hint cannot park a message.
void Stage::Impl::scheduleRetry(Item& item, std::chrono::milliseconds at_least) {
  item.state = ItemState::kRetryWait;
  const std::uint64_t id = item.id;
  auto queue = events;
  const auto hint =
      std::min(at_least, std::chrono::milliseconds(std::max(options.limits.retry_backoff_max_ms, 60'000)));
  timers->schedule(std::max(backoff(item.attempt), hint), [queue, id] {
    Event e;
    e.kind = EventKind::kRetryDue;
    e.item = id;
    queue->push(std::move(e));
  });
}

void Stage::Impl::failed(Item& item, const Error& error) {
  if (!error.outage.empty()) return holdForOutage(item, error);
  if (error.retriable && item.attempt < options.limits.max_attempts) {
    ++stats.retries;
    scheduleRetry(item, std::chrono::milliseconds(std::max<std::int64_t>(0, error.retry_after_ms)));
    return;
  }
  deadLetter(item, error);
}

void Stage::Impl::deadLetter(Item& item, const Error& error) {
  item.dead_lettering = true;
  item.dead_letter = deadLetterFor(options.name, error, *item.delivery, *options.clock);
  item.error_class = errorCodeName(error.code);
  // A letter over our own limit is cut before librdkafka refuses it; the topic may refuse less.
  // The key travels twice: as the record's key and inside the letter.
  while (toJson(item.dead_letter).size() + item.dead_letter.key.size() + kDeadLetterHeadroomBytes >
             static_cast<std::size_t>(producer->maxMessageBytes()) &&
         cutDeadLetter(item)) {
  }
  produceDeadLetter(item);
}

// A dead letter the topic refuses for its size keeps less of its payload each time (the
// reference, the reason and the start of the payload always fit), so its offset advances.
bool Stage::Impl::cutDeadLetter(Item& item) {
  static constexpr std::size_t kPayloadSteps[] = {64 * 1024, 1024, 0};
  if (item.dead_letter_cuts >= static_cast<int>(std::size(kPayloadSteps))) return false;
  truncatePayload(item.dead_letter, kPayloadSteps[item.dead_letter_cuts++]);
  return true;
}

void Stage::Impl::produceDeadLetter(Item& item) {
  std::vector<OutputRecord> out(1);
  out[0].topic = options.dlq_topic;
  out[0].value = toJson(item.dead_letter);
  // The letter's own key: cut with its payload when the letter had to shrink. (An empty key
  // falls back to the message's, which is then empty too.)
  out[0].key = item.dead_letter.key;
  out[0].headers = {{kStageHeader, options.name},
                    {kErrorClassHeader, item.error_class},
                    {kAttemptsHeader, std::to_string(item.attempt)}};
  produceOutputs(item, std::move(out));
}

// A failure that names an outage (Error::outage: redis, provider, kafka, ...) is not the
// message's fault, so it uses no attempt. The message is held; its partition pauses while it
// holds any, so nothing new piles up behind the outage. One held message per cause is the
// probe: it runs again after a capped, doubling backoff (or the error's retry-after hint), and
// when it gets past the outage every message held for that cause runs again, in key order.
// stage.max_hold_s may bound a cause's hold; past it the message is dead-lettered, naming it.

std::chrono::milliseconds Stage::Impl::probeBackoffMax() const {
  return std::chrono::milliseconds(std::max(options.limits.outage_probe_max_ms, 1));
}

void Stage::Impl::holdForOutage(Item& item, const Error& error) {
  const auto now = std::chrono::steady_clock::now();
  const std::string& cause = error.outage;
  if (!item.held_since) item.held_since = now;
  if (const auto max = maxHold(cause); max.count() > 0 && now - *item.held_since >= max) {
    Error e = error;
    e.message = "held " +
                std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now - *item.held_since).count()) +
                " s for " + cause + " (stage.max_hold_s." + cause + "): " + error.message;
    ++outage_totals[cause].dead_lettered;
    return giveUpHold(item, e);
  }
  // The probe met "its" outage again although a message whose run began after this one was
  // held went through: the dependency was up for that one, so the fault is likely this
  // message's (a prompt that always times out, a reply the broker refuses). After max_attempts
  // such strikes it is dead-lettered, so it cannot hold its partition (and its cause) for ever.
  // (Runs that began before an outage and finish during it prove nothing, hence "began after".)
  // Not for a sink: an update that other sinks took says nothing about the one that is down
  // (stage.max_hold_s.sink bounds that wait).
  if (cause != "sink" && item.outage == cause && last_success_run_began > item.outage_since &&
      ++item.outage_strikes >= options.limits.max_attempts) {
    Error e = error;
    e.outage.clear();
    e.message = "failed as an outage of " + cause + " " + std::to_string(item.outage_strikes) +
                " times while other messages went through: " + error.message;
    return giveUpHold(item, e);
  }
  auto [hit, fresh] = outages.try_emplace(cause);
  OutageHold& hold = hit->second;
  if (fresh) {
    hold.since = now;
    hold.backoff =
        std::min(std::chrono::milliseconds(std::max(options.limits.retry_backoff_initial_ms, 50)), probeBackoffMax());
    ++outage_totals[cause].outages;
    logLine("holding messages: " + cause + " unavailable (" + error.message.substr(0, 300) +
            "); their partitions pause until it is back");
  }
  hold.last_error = error.message.substr(0, 500);
  if (item.outage.empty()) {
    item.outage = cause;
    item.outage_since = now;
    ++outage_totals[cause].held;
    if (auto pit = partitions.find(item.tp); pit != partitions.end() && ++pit->second.outage_held == 1)
      pause({item.tp});
  }
  item.state = ItemState::kOutageWait;
  const auto hint = std::chrono::milliseconds(std::clamp<std::int64_t>(error.retry_after_ms, 0, 60'000));
  if (hold.probe == item.id) {  // the probe met the outage again
    hold.backoff = std::min(hold.backoff * 2, probeBackoffMax());
    // The next held message probes next time: one message that fails for its own reasons
    // must not keep the others held once the dependency is back.
    if (!hold.waiting.empty()) {
      hold.waiting.push_back(item.id);
      hold.probe = hold.waiting.front();
      hold.waiting.pop_front();
    }
    scheduleProbe(*items.at(*hold.probe), std::max(hold.backoff, hint));
  } else if (!hold.probe) {
    hold.probe = item.id;
    scheduleProbe(item, std::max(hold.backoff, hint));
  } else {
    hold.waiting.push_back(item.id);
  }
}

// A held (or failing) message leaves its hold for good: dead-lettered with `error`.
void Stage::Impl::giveUpHold(Item& item, const Error& error) {
  if (!item.outage.empty()) leaveOutage(item, false);
  item.held_since.reset();
  deadLetter(item, error);
}

std::chrono::milliseconds Stage::Impl::maxHold(const std::string& cause) const {
  auto it = options.limits.max_hold_s.find(cause);
  return it == options.limits.max_hold_s.end() ? std::chrono::milliseconds(0)
                                               : std::chrono::milliseconds(it->second * 1000);
}

void Stage::Impl::scheduleProbe(Item& item, std::chrono::milliseconds delay) {
  ++outages.at(item.outage).probes;
  auto queue = events;
  timers->schedule(delay, [queue, id = item.id] {
    Event e;
    e.kind = EventKind::kProbeDue;
    e.item = id;
    queue->push(std::move(e));
  });
}

// `item` leaves its cause's hold: its probe got past it (`resolved`: every message held for
// the cause runs again), or it is dead-lettered or abandoned (the next held one probes).
// `item` is no longer held: its held seconds counted, its partition resumed when it held no other.
std::string Stage::Impl::unhold(Item& item, bool resolved, SteadyTime now) {
  std::string cause = std::exchange(item.outage, std::string());
  outage_totals[cause].held_seconds += std::chrono::duration<double>(now - item.outage_since).count();
  if (resolved) item.held_since.reset();  // stage.max_hold_s counts each episode on its own
  if (auto pit = partitions.find(item.tp); pit != partitions.end() && --pit->second.outage_held == 0)
    resumeIfFree(item.tp);
  return cause;
}

void Stage::Impl::leaveOutage(Item& item, bool resolved) {
  const auto now = std::chrono::steady_clock::now();
  const std::string cause = unhold(item, resolved, now);
  auto hit = outages.find(cause);
  if (hit == outages.end()) return;
  OutageHold& hold = hit->second;
  if (hold.probe != item.id) {
    std::erase(hold.waiting, item.id);
  } else if (resolved) {
    std::deque<std::uint64_t> waiting = std::move(hold.waiting);
    logLine(cause + " is back after " +
            std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now - hold.since).count()) + " s; " +
            std::to_string(waiting.size() + 1) + " held message(s) go on");
    outages.erase(hit);
    for (std::uint64_t id : waiting) {
      auto it = items.find(id);
      if (it == items.end() || it->second->state != ItemState::kOutageWait) continue;
      Item& held_item = *it->second;
      unhold(held_item, /*resolved=*/true, now);
      if (mayStart(held_item)) start(held_item, /*rerun=*/true);
    }
    return;
  } else {
    hold.probe.reset();
    while (!hold.waiting.empty() && !hold.probe) {
      const std::uint64_t next = hold.waiting.front();
      hold.waiting.pop_front();
      auto it = items.find(next);
      if (it == items.end() || it->second->state != ItemState::kOutageWait) continue;
      hold.probe = next;
      scheduleProbe(*it->second, hold.backoff);
    }
  }
  if (!hold.probe && hold.waiting.empty()) outages.erase(hit);
}

// Dead-letters held messages past their cause's stage.max_hold_s (checked every second).
void Stage::Impl::expireOutageHolds() {
  const auto now = std::chrono::steady_clock::now();
  if (outages.empty() || now < next_hold_check_at) return;
  next_hold_check_at = now + std::chrono::seconds(1);
  std::vector<std::pair<std::uint64_t, Error>> expired;
  for (const auto& entry : outages) {
    const std::string& cause = entry.first;  // named, not bound: clang 14 cannot capture bindings
    const auto& hold = entry.second;
    const auto max = maxHold(cause);
    if (max.count() <= 0) continue;
    auto check = [&](std::uint64_t id) {
      auto it = items.find(id);
      if (it != items.end() && it->second->held_since && now - *it->second->held_since >= max)
        expired.emplace_back(id, Error::unavailable(hold.last_error).asOutage(cause));
    };
    if (hold.probe) check(*hold.probe);
    for (std::uint64_t id : hold.waiting) check(id);
  }
  for (auto& [id, error] : expired) {
    auto it = items.find(id);
    if (it == items.end() || it->second->state != ItemState::kOutageWait) continue;
    holdForOutage(*it->second, error);  // past its limit: dead-lettered, naming the cause
  }
}

DeadLetter deadLetterFor(const std::string& stage_name, const Error& error, const Delivery& delivery,
                         const Clock& clock) {
  const kafka::Message& m = delivery.message;
  DeadLetter d;
  d.stage = stage_name;
  d.error_class = error.code;
  d.error = utf8Prefix(error.message, 4000);
  d.attempts = delivery.attempt;
  d.topic = m.topic;
  d.partition = m.partition;
  d.offset = m.offset;
  d.key = m.key.value_or("");
  d.payload = m.value;
  if (d.key.size() <= 128) d.ticket_id = d.key;
  if (isTraceId(delivery.trace_id)) d.trace_id = delivery.trace_id;
  d.failed_at = formatRfc3339(clock.now());
  return d;
}

}  // namespace ticketflow::stage
