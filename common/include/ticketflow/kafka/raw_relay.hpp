#pragma once
// What `ticketflow bench stage` needs from librdkafka directly: filler data, and the baseline a
// stage is measured against, a raw consume->produce relay with no engine (no window, no key
// ordering, no retries), written the way a hand-rolled worker would be. Benchmarks only.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "ticketflow/config/config.hpp"
#include "ticketflow/core/result.hpp"
#include "ticketflow/kafka/client.hpp"

namespace ticketflow::kafka {

// Produces `count` records of `bytes` bytes each, keyed "ticket-<n>", and waits for every
// acknowledgement.
Status produceFiller(const KafkaConfig& kafka, const std::string& topic, std::int64_t count, std::size_t bytes);

struct RelayResult {
  std::int64_t messages = 0;
  std::chrono::duration<double> elapsed{};  // first message consumed to last output acknowledged
};

// Relays `count` messages from `input` to `output` in consumer group `group`: poll a single
// message, produce it (idempotent, acks=all), store its offset, commit once a second; returns
// when `count` outputs are acknowledged or `timeout` passed. `consumer_properties` are the same
// overrides a stage gets.
Result<RelayResult> runRawRelay(const KafkaConfig& kafka, const std::string& input, const std::string& output,
                                const std::string& group, std::int64_t count, std::chrono::seconds timeout,
                                const Properties& consumer_properties = {});

}  // namespace ticketflow::kafka
