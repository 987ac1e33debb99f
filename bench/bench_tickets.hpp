#pragma once
// What the whole-pipeline benchmarks share: tickets made from the shipped samples, and a reader
// that counts what arrives on a topic.

#include <chrono>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "ticketflow/config/config.hpp"
#include "ticketflow/core/embedded.hpp"
#include "ticketflow/domain/messages.hpp"
#include "ticketflow/kafka/client.hpp"

namespace ticketflow::app {

// `count` tickets cycling through config/samples/tickets.jsonl, ids "<prefix><n>".
inline std::vector<Ticket> benchTickets(const std::string& prefix, int count) {
  std::vector<Ticket> samples;
  std::istringstream lines{std::string(*embeddedFile("config/samples/tickets.jsonl"))};
  for (std::string line; std::getline(lines, line);)
    if (auto t = parseTicket(line)) samples.push_back(std::move(*t));
  std::vector<Ticket> out;
  out.reserve(static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) {
    Ticket t = samples[static_cast<std::size_t>(i) % samples.size()];
    t.id = prefix + std::to_string(i);
    out.push_back(std::move(t));
  }
  return out;
}

// Reads one topic from its start in a group of its own.
class TopicCounter {
 public:
  TopicCounter(const Config& config, const std::string& topic, const kafka::Properties& overrides)
      : consumer_(config.kafka, "bench", "ticketflow-bench-" + topic, overrides) {
    if (auto st = consumer_.subscribe({topic}); !st) throw std::runtime_error(st.error().message);
  }
  // While a backlog runs, the bench's own reader fetches nothing (its CPU would count as the
  // pipeline's); what arrived meanwhile is read afterwards.
  void setPaused(bool paused) {
    if (auto st = consumer_.setPaused(paused); !st) throw std::runtime_error("bench: " + st.error().message);
  }
  // Polls for up to `for_at_most`; calls `seen(message)` per message.
  template <typename F>
  void pollMessages(std::chrono::milliseconds for_at_most, F&& seen) {
    const auto until = std::chrono::steady_clock::now() + for_at_most;
    while (std::chrono::steady_clock::now() < until) {
      auto m = consumer_.poll(std::chrono::milliseconds(20));
      if (m && m->has_value()) seen(**m);
    }
  }
  // The same, with the message's key.
  template <typename F>
  void poll(std::chrono::milliseconds for_at_most, F&& seen) {
    pollMessages(for_at_most, [&](const kafka::Message& m) { seen(m.key.value_or("")); });
  }

 private:
  kafka::Consumer consumer_;
};

}  // namespace ticketflow::app
