// Message bytes from anyone who can write to a topic: every parse returns a value or an error,
// and a value written back is read again as the same message.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "ticketflow/domain/messages.hpp"

namespace {

template <typename Parse>
void roundTrip(std::string_view bytes, Parse parse) {
  auto parsed = parse(bytes);
  if (!parsed) return;
  const std::string written = ticketflow::toJson(*parsed);
  auto again = parse(written);
  if (!again || ticketflow::toJson(*again) != written) std::abort();  // what we write, we must read
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  roundTrip(bytes, [](std::string_view b) { return ticketflow::parseTicket(b); });
  roundTrip(bytes, [](std::string_view b) { return ticketflow::parseRoutedTicket(b); });
  roundTrip(bytes, [](std::string_view b) { return ticketflow::parseTicketResult(b); });
  roundTrip(bytes, [](std::string_view b) { return ticketflow::parseTicketUpdate(b); });
  roundTrip(bytes, [](std::string_view b) { return ticketflow::parseDeadLetter(b); });
  return 0;
}
