#include "ticketflow/stage/key_scheduler.hpp"

#include <algorithm>
#include <set>

#include "ticketflow/core/check.hpp"

namespace ticketflow::stage {

bool KeyScheduler::admit(std::uint64_t id, const std::string& key) {
  if (key.empty()) return true;
  auto& queue = queues_[key];
  queue.push_back(id);
  return queue.size() == 1;
}

std::optional<std::uint64_t> KeyScheduler::finish(std::uint64_t id, const std::string& key) {
  if (key.empty()) return std::nullopt;
  auto it = queues_.find(key);
  TF_CHECK(it != queues_.end() && !it->second.empty() && it->second.front() == id,
           "finished message is not the front of its key queue");
  it->second.pop_front();
  if (it->second.empty()) {
    queues_.erase(it);
    return std::nullopt;
  }
  return it->second.front();
}

std::vector<std::uint64_t> KeyScheduler::abandon(const std::vector<std::pair<std::uint64_t, std::string>>& abandoned) {
  std::set<std::string> touched;
  for (const auto& [id, key] : abandoned) {
    if (key.empty()) continue;
    auto it = queues_.find(key);
    if (it == queues_.end()) continue;
    std::erase(it->second, id);
    touched.insert(key);
  }
  std::vector<std::uint64_t> fronts;
  for (const auto& key : touched) {
    auto it = queues_.find(key);
    if (it->second.empty()) {
      queues_.erase(it);
    } else {
      fronts.push_back(it->second.front());
    }
  }
  return fronts;
}

}  // namespace ticketflow::stage
