#include "ticketflow/core/money.hpp"

#include <cmath>
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
  const double usd = static_cast<double>(micro) / static_cast<double>(kMicroUsdPerUsd);
  out << (micro < 0 ? "-$" : "$") << std::fixed << std::setprecision(std::abs(usd) >= 100 ? 2 : 4) << std::abs(usd);
  return out.str();
}

}  // namespace ticketflow
