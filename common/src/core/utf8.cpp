#include "ticketflow/core/utf8.hpp"

#include <string>

namespace ticketflow {

std::string utf8Prefix(std::string_view s, std::size_t max_code_points) {
  std::size_t i = 0, points = 0;
  while (i < s.size() && points < max_code_points) {
    std::size_t next = i + 1;
    while (next < s.size() && (static_cast<unsigned char>(s[next]) & 0xC0) == 0x80) ++next;  // continuation bytes
    i = next;
    ++points;
  }
  return std::string(s.substr(0, i));
}

}  // namespace ticketflow
