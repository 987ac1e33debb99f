#include "ticketflow/core/money.hpp"

#include <cstdlib>
#include <iomanip>
#include <sstream>

namespace ticketflow {

std::string formatUsdExact(MicroUsd micro) {
  std::ostringstream out;
  out << (micro < 0 ? "-" : "") << "$" << std::llabs(micro) / kMicroUsdPerUsd << "." << std::setw(6)
      << std::setfill('0') << std::llabs(micro) % kMicroUsdPerUsd;
  return out.str();
}

std::string formatUsd(MicroUsd micro) {
  std::ostringstream out;
  out << "$" << std::fixed << std::setprecision(micro >= 100 * kMicroUsdPerUsd ? 2 : 4)
      << static_cast<double>(micro) / static_cast<double>(kMicroUsdPerUsd);
  return out.str();
}

}  // namespace ticketflow
