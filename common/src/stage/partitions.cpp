// The partitions this stage owns: what a rebalance gives and takes, commits, pause/resume for
// backpressure, and the drain and abandon of a shutdown or revoke.
#include <algorithm>

#include "engine.hpp"

namespace ticketflow::stage {

void Stage::Impl::onAssigned(const std::vector<kafka::AssignedPartition>& assigned,
                             const std::string& committed_error) {
  ++stats.rebalances;
  logLine("assigned " + std::to_string(assigned.size()) + " partition(s)");
  if (!committed_error.empty())
    logLine("reading committed offsets failed (" + committed_error + "); finished work beyond them will be redone");
  std::vector<TopicPartition> added;
  for (const auto& a : assigned) {
    // The commit metadata lists work finished beyond the committed offset: it is skipped.
    std::set<std::int64_t> done;
    if (a.committed >= 0 && !a.metadata.empty()) {
      if (auto decoded = PartitionOffsets::decodeMetadata(a.metadata, a.committed)) done = std::move(*decoded);
    }
    Partition state;
    state.offsets = PartitionOffsets(a.committed, std::move(done));
    state.committed = a.committed;
    state.fetched_to = a.committed;
    partitions[a.partition] = std::move(state);
    added.push_back(a.partition);
  }
  if (backpressure.pausedAll() || stopping) pause(added);
}

void Stage::Impl::onRevoking(const std::vector<TopicPartition>& revoked, bool lost) {
  ++stats.rebalances;
  logLine((lost ? "lost " : "revoked ") + std::to_string(revoked.size()) + " partition(s)");
  for (const auto& tp : revoked)
    if (auto it = partitions.find(tp); it != partitions.end()) it->second.revoking = true;
  // Messages consumed but never started are simply left for the next owner.
  std::erase_if(held, [this](const kafka::Message& m) {
    auto it = partitions.find({m.topic, m.partition});
    return it == partitions.end() || it->second.revoking;
  });
  // Running handlers and unacknowledged outputs get until the deadline; queued and retrying
  // messages are not started again and are left to the next owner.
  if (!lost) drain([this] { return !releasingWorkActive(); });
  abandon([](const Partition& p) { return p.revoking; });
  if (!lost) commit(revoked, /*sync=*/true, /*force=*/true);
  // Pause state goes with the partition: it is never resumed by us once released.
  for (const auto& tp : revoked) partitions.erase(tp);
}

// Only an acknowledged commit counts: a failed one (a commit racing a rebalance gets
// ILLEGAL_GENERATION) is sent again at the next chance.
void Stage::Impl::onCommitted(const std::vector<kafka::CommitOutcome>& outcomes, const std::string& error) {
  int failed = 0;
  for (const auto& o : outcomes) {
    auto it = partitions.find(o.partition);
    if (it == partitions.end()) continue;
    it->second.committing = -1;
    if (!o.ok) {
      ++failed;
      continue;
    }
    ++stats.commits;
    it->second.committed = o.offset;
    it->second.committed_metadata = o.metadata;
  }
  if (failed)
    logLine("commit failed for " + std::to_string(failed) + " partition(s): " + error + "; retried at the next commit");
}

// The partition's position is not in the log any more: the records between it and the log start
// were removed before anyone processed them (retention, or the broker's size limit). They are
// gone; what can be done is to say so loudly and go on from the log start.
void Stage::Impl::offsetGone(const TopicPartition& tp) {
  auto it = partitions.find(tp);
  if (it == partitions.end()) return;
  Partition& p = it->second;
  const std::string where = tp.first + "[" + std::to_string(tp.second) + "]";
  if (p.fetched_to < 0) {  // no position known: reading the committed offset failed, and there is none
    logLine(where + ": no committed offset; starting at the log start");
  } else {
    const auto marks = consumer->queryWatermarks(tp, std::chrono::seconds(5));
    const std::int64_t lost = !marks || marks->low < p.fetched_to ? -1 : marks->low - p.fetched_to;
    ++stats.offsets_gone;
    if (lost > 0) stats.records_lost += lost;
    logLine(
        where + ": offset " + std::to_string(p.fetched_to) + " is no longer in the log (retention or the " +
        "broker's size limit removed it): " + (lost >= 0 ? std::to_string(lost) : std::string("an unknown number of")) +
        " records were never processed; going on from the log start" +
        (marks ? " (" + std::to_string(marks->low) + ")" : ""));
  }
  if (const std::string error = consumer->restartAtLogStart(tp); !error.empty())
    logLine(where + ": restarting at the log start failed: " + error);
  if (p.paused_by_us) {  // a fresh assignment fetches: pause it again
    p.paused_by_us = false;
    pause({tp});
  }
}

void Stage::Impl::shutdown() {
  stopping = true;
  std::vector<TopicPartition> all;
  for (auto& [tp, p] : partitions) {
    all.push_back(tp);
    p.revoking = true;  // no new work anywhere
  }
  pause(all);  // stop fetching
  held.clear();
  drain([this] { return !releasingWorkActive(); });
  abandon([](const Partition&) { return true; });
  commit(all, /*sync=*/true, /*force=*/true);
  // Leaving the group runs the revoke, which finds nothing left to do.
  events->setWake(nullptr);
  consumer->close();
  producer->flush(std::chrono::milliseconds(options.limits.drain_deadline_ms));
  publish();
}

// True while a handler runs or outputs are unacknowledged in a partition being released.
bool Stage::Impl::releasingWorkActive() const {
  for (const auto& [id, item] : items) {
    if (item->state != ItemState::kRunning && item->state != ItemState::kProducing &&
        item->state != ItemState::kAfterAck)
      continue;
    auto it = partitions.find(item->tp);
    if (it == partitions.end() || it->second.revoking) return true;
  }
  return false;
}

// Gives up on in-flight items of the partitions matching `which`: their offsets stay
// uncommitted, so the partition's next owner (or our restart) redoes them.
void Stage::Impl::abandon(const std::function<bool(const Partition&)>& which) {
  std::vector<std::pair<std::uint64_t, std::string>> abandoned;
  for (const auto& [id, item] : items) {
    auto pit = partitions.find(item->tp);
    if (pit == partitions.end() || which(pit->second)) abandoned.emplace_back(id, item->key);
  }
  for (const auto& [id, key] : abandoned) {
    auto it = items.find(id);
    Item& item = *it->second;
    if (!item.outage.empty()) leaveOutage(item, false);
    if (auto pit = partitions.find(item.tp); pit != partitions.end()) --pit->second.in_flight;
    --in_flight;
    ++stats.abandoned;
    items.erase(it);
  }
  for (std::uint64_t front_id : keys.abandon(abandoned)) {
    Item& front = *items.at(front_id);
    if (front.state == ItemState::kQueued && mayStart(front)) start(front);
  }
}

// Handles events until `done()` or the drain deadline (stage.drain_deadline_ms).
void Stage::Impl::drain(const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(options.limits.drain_deadline_ms);
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    events->waitFor(std::chrono::milliseconds(20));
    processEvents();
  }
}

bool Stage::Impl::applyBackpressure() {
  const std::int64_t load = in_flight + static_cast<std::int64_t>(held.size());
  switch (backpressure.check(load, std::chrono::steady_clock::now())) {
    case Backpressure::Action::kPoll:
      return false;  // when paused, polling only serves rebalances (and rare stragglers go to `held`)
    case Backpressure::Action::kWait:
      return true;
    case Backpressure::Action::kResumeAll:
      resumeOurs();
      return false;
    case Backpressure::Action::kPauseAll: {
      ++stats.backpressure_pauses;
      std::vector<TopicPartition> all;
      for (const auto& [tp, p] : partitions) all.push_back(tp);
      pause(all);
      return false;
    }
  }
  return false;
}

void Stage::Impl::pause(const std::vector<TopicPartition>& which) {
  std::vector<TopicPartition> fresh;
  for (const auto& tp : which) {
    auto it = partitions.find(tp);
    if (it != partitions.end() && !it->second.paused_by_us) fresh.push_back(tp);
  }
  for (const auto& tp : consumer->pause(fresh)) partitions[tp].paused_by_us = true;
}

// Resumes exactly the partitions this engine paused, never one paused by someone else, and
// none that still holds a message for an outage.
void Stage::Impl::resumeOurs() {
  std::vector<TopicPartition> ours;
  for (auto& [tp, p] : partitions)
    if (p.paused_by_us && !p.revoking && p.outage_held == 0) ours.push_back(tp);
  resume(ours);
}

// A partition whose last held message went on resumes, unless backpressure keeps it paused.
void Stage::Impl::resumeIfFree(const TopicPartition& tp) {
  auto it = partitions.find(tp);
  if (it == partitions.end() || !it->second.paused_by_us || it->second.revoking || backpressure.pausedAll() ||
      stopping || it->second.outage_held > 0)
    return;
  resume({tp});
}

void Stage::Impl::resume(const std::vector<TopicPartition>& which) {
  if (which.empty()) return;
  for (const auto& tp : consumer->resume(which)) partitions[tp].paused_by_us = false;
  // librdkafka 2.0.2 leaves the fetcher of a resumed partition idle until its next 1 s tick.
  fetch_waker->wake(which.front());
}

// Partitions fetching now: neither paused by us nor being released.
std::vector<TopicPartition> Stage::Impl::fetchingPartitions() const {
  std::vector<TopicPartition> out;
  if (backpressure.pausedAll()) return out;
  for (const auto& [tp, p] : partitions)
    if (!p.paused_by_us && !p.revoking) out.push_back(tp);
  return out;
}

void Stage::Impl::maybeCommit() {
  const auto now = std::chrono::steady_clock::now();
  if (now < next_commit_at) return;
  next_commit_at = now + std::chrono::milliseconds(options.limits.commit_interval_ms);
  std::vector<TopicPartition> all;
  for (const auto& [tp, p] : partitions) all.push_back(tp);
  commit(all, /*sync=*/false, /*force=*/false);
}

// Stores and commits the contiguous done offset of each partition, with the done offsets
// beyond it as metadata. Skipped when the assignment was lost: those partitions already
// belong to another member.
void Stage::Impl::commit(const std::vector<TopicPartition>& which, bool sync, bool force) {
  if (consumer->assignmentLost()) return;
  std::vector<kafka::OffsetToCommit> offsets;
  for (const auto& tp : which) {
    auto it = partitions.find(tp);
    if (it == partitions.end()) continue;
    Partition& p = it->second;
    const std::int64_t next = p.offsets.nextCommit();
    if (next < 0) continue;
    std::string metadata = p.offsets.metadata();
    if (!force && ((next == p.committed && metadata == p.committed_metadata) ||
                   (next == p.committing && metadata == p.committing_metadata)))
      continue;
    p.committing = next;
    p.committing_metadata = metadata;
    offsets.push_back({tp, next, std::move(metadata)});
  }
  if (Status sent = consumer->commit(offsets, sync); !sent) logLine(sent.error().message);
}

}  // namespace ticketflow::stage
