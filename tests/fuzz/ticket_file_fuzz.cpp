// Ticket files for submit and triage (CSV and JSON Lines): every record becomes a ticket or an
// error naming its line, and a ticket made from a record is a valid message.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "ticketflow/domain/messages.hpp"
#include "ticketflow/domain/ticket_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  // The first byte picks the format, so one corpus covers both readers.
  const auto format = data[0] & 1 ? ticketflow::TicketFileFormat::kCsv : ticketflow::TicketFileFormat::kJsonLines;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto records = ticketflow::parseTicketRecords(text, format, "fuzz");
  if (!records) return 0;
  static const auto mapped = ticketflow::ColumnMap::parse("body=text,id=number,subject=title");
  const ticketflow::TicketDefaults defaults{"acme", "2026-11-22T10:00:00Z", "other"};
  for (const auto& record : *records) {
    for (const auto* columns : {static_cast<const ticketflow::ColumnMap*>(nullptr), &*mapped}) {
      auto ticket = ticketflow::ticketFromRecord(record, columns ? *columns : ticketflow::ColumnMap{}, defaults);
      if (!ticket) {
        if (ticket.error().message.rfind("line ", 0) != 0) std::abort();  // every error names its line
        continue;
      }
      if (!ticketflow::parseTicket(ticketflow::toJson(*ticket))) std::abort();
    }
  }
  return 0;
}
