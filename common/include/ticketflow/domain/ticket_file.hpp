#pragma once
// Reading tickets from files: a backlog export, a sample, a test corpus. JSON Lines or CSV
// (RFC 4180 with a header row), either optionally gzip-compressed; the format comes from the
// name (*.csv[.gz] is CSV). Records keep their line number so every error names it.
//
// A record becomes a Ticket either as it is (a JSON line already in schemas/ticket.schema.json
// form) or through a column map, "body=description,id=number,tenant=customer", for exports
// from other systems. Mapped fields: id, tenant, subject, body (default column: body, then text,
// then description), priority, created_at, source_system, source_ref, requester_name,
// requester_email, requester_department, revision. Values that do not fit the schema (an
// unknown priority word) are kept in metadata rather than failing the ticket.

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ticketflow/core/result.hpp"
#include "ticketflow/domain/messages.hpp"

namespace ticketflow {

struct TicketRecord {
  std::size_t line = 0;   // 1-based line (CSV: the row's first line)
  nlohmann::json fields;  // an object; null when a JSON line is not an object (raw says what it was)
  std::string raw;        // JSON Lines: the line as written
};

// The bytes of a file, gunzipped when it is gzip data; kIo error if it cannot be read.
Result<std::string> readMaybeGzipFile(const std::string& path);

// Splits CSV text into rows of fields (RFC 4180: quoted fields may hold commas, quotes as "",
// and line breaks). Error for an unterminated quote.
// `row_lines`, when given, receives the 1-based line each row starts on (a quoted field may span
// lines). An error names the line.
Result<std::vector<std::vector<std::string>>> parseCsv(const std::string& data,
                                                       std::vector<std::size_t>* row_lines = nullptr);

// Every record of the file. Errors: unreadable file, CSV without a header or with a broken quote.
Result<std::vector<TicketRecord>> readTicketRecords(const std::string& path);

enum class TicketFileFormat { kCsv, kJsonLines };
// The records of a file's bytes; `path` only names the file in errors.
Result<std::vector<TicketRecord>> parseTicketRecords(const std::string& data, TicketFileFormat format,
                                                     const std::string& path);

struct ColumnMap {
  std::map<std::string, std::string> columns;  // ticket field -> record column
  // "field=column,..."; an unknown field name is an error naming it.
  static Result<ColumnMap> parse(const std::string& spec);
  bool empty() const { return columns.empty(); }
};

struct TicketDefaults {
  std::string tenant = "default";  // when the record names none
  std::string created_at;          // when the record has none (RFC 3339)
  std::string source_system = "other";
};

// The ticket a record describes, validated against the schema; the error names the line and
// the field. With an empty map, a record that has schema_version is taken as a ticket as it is.
// The helpdesk's own category of a ticket read from a file (metadata.label, from a `label` or
// `category` column); "" when the file had none.
std::string ticketLabel(const Ticket& ticket);

Result<Ticket> ticketFromRecord(const TicketRecord& record, const ColumnMap& map, const TicketDefaults& defaults);

}  // namespace ticketflow
