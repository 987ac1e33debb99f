#pragma once
// Which consumed message may run now: messages with the same key run one at a time, in the order
// they were admitted; a message without a key ("") is ordered against nothing and runs at once.
// The stage engine's poll thread owns it (no locks). Ids are the engine's item ids.
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace ticketflow::stage {

class KeyScheduler {
 public:
  // Queues `id` behind earlier messages of `key`. True when it may start now: it is keyless or
  // the first of its key.
  bool admit(std::uint64_t id, const std::string& key);
  // `id`, the running front of `key`, finished: the key's next message, which may start now.
  // (A keyless id has nothing behind it.) Aborts if `id` is not the front of `key`: our bug.
  std::optional<std::uint64_t> finish(std::uint64_t id, const std::string& key);
  // Drops `abandoned` (id, key) wherever they wait. Returns the new fronts of the keys touched,
  // which may start if they have not already.
  std::vector<std::uint64_t> abandon(const std::vector<std::pair<std::uint64_t, std::string>>& abandoned);
  // Keys with a message running or waiting.
  std::size_t activeKeys() const { return queues_.size(); }

 private:
  std::unordered_map<std::string, std::deque<std::uint64_t>> queues_;
};

}  // namespace ticketflow::stage
