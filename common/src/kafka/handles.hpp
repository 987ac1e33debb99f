#pragma once
// Handle factories shared by the Kafka clients in common/src/kafka (librdkafka stays here).
#include <vector>

#include <librdkafka/rdkafka.h>

#include "ticketflow/kafka/client.hpp"

namespace ticketflow::kafka {

// rd_kafka_new, owning the conf on success; throws std::runtime_error with librdkafka's reason.
HandlePtr makeHandle(rd_kafka_type_t type, ConfPtr conf);

// A header list for one produce; RD_KAFKA_V_HEADERS takes it over only when the produce succeeds.
HeadersPtr makeHeaders(const std::vector<Header>& headers);

}  // namespace ticketflow::kafka
