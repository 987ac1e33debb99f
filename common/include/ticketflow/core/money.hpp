#pragma once
// Money: integer micro-dollars everywhere in code, and the two ways it is shown to people.

#include <cstdint>
#include <string>

namespace ticketflow {

using MicroUsd = std::int64_t;
constexpr MicroUsd kMicroUsdPerUsd = 1'000'000;

// "$1.234567", "-$0.000001": every micro-dollar shown (ledgers and caps, where a figure must add up).
std::string formatUsdExact(MicroUsd micro);
// "$1.2346" below $100, "$123.46" from there: reports and summaries.
std::string formatUsd(MicroUsd micro);

}  // namespace ticketflow
