#pragma once
// PartitionOffsets: which offsets of one partition are done, so the stage commits only the
// highest contiguous completed offset, plus a compact record of the work finished beyond it
// (the commit metadata) so a restart does not do that work again. Pure bookkeeping, no I/O.
// Not thread-safe: the stage's poll thread owns each instance.

#include <cstdint>
#include <deque>
#include <optional>
#include <set>
#include <string>

namespace ticketflow::stage {

class PartitionOffsets {
 public:
  // `committed` is the group's committed next offset, or a negative value when there is none.
  // `already_done` lists offsets at or beyond it that were finished before (from metadata).
  explicit PartitionOffsets(std::int64_t committed = -1, std::set<std::int64_t> already_done = {});

  // Records a consumed offset. Returns true when the caller must not run it: it was finished
  // by an earlier owner (it then counts as done at once), or it was already consumed (a fetch
  // reset redelivered it).
  bool track(std::int64_t offset);
  // Marks a tracked offset done.
  void complete(std::int64_t offset);

  // The offset to commit: every consumed offset before it is done. Negative when nothing is
  // known yet (no committed offset and nothing consumed).
  std::int64_t nextCommit() const;
  // Offsets done beyond nextCommit(), encoded for commit metadata; "" when there are none.
  // At most kMaxMetadataOffsets offsets past nextCommit() are recorded; later ones are simply
  // redone after a restart.
  std::string metadata() const;
  // Tracked offsets not yet done.
  std::size_t pending() const { return pending_; }

  static constexpr std::int64_t kMaxMetadataOffsets = 8192;
  // Decodes metadata written by metadata(); nullopt when it is not ours or was written for a
  // different committed offset (then nothing is skipped).
  static std::optional<std::set<std::int64_t>> decodeMetadata(const std::string& metadata, std::int64_t committed);

 private:
  struct Entry {
    std::int64_t offset;
    bool done;
  };
  void advance();

  std::deque<Entry> entries_;  // consumed, from the first not-done offset on, increasing
  std::int64_t next_ = -1;     // commit point when entries_ is empty
  std::set<std::int64_t> already_done_;
  std::size_t pending_ = 0;
};

}  // namespace ticketflow::stage
