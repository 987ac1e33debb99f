#include "ticketflow/domain/ticket_file.hpp"

#include <cerrno>
#include <cstring>
#include <set>
#include <sstream>

#include <zlib.h>

#include "ticketflow/core/clock.hpp"
#include "ticketflow/core/json_parse.hpp"
#include "ticketflow/core/utf8.hpp"

namespace ticketflow {
namespace {

using nlohmann::json;

bool endsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

const std::set<std::string>& mappableFields() {
  static const std::set<std::string> fields = {"id",
                                               "tenant",
                                               "subject",
                                               "body",
                                               "priority",
                                               "created_at",
                                               "source_system",
                                               "source_ref",
                                               "requester_name",
                                               "requester_email",
                                               "requester_department",
                                               "revision",
                                               "label"};
  return fields;
}

// A record's value as text ("" when absent or null).
std::string textOf(const json& fields, const std::string& column) {
  auto it = fields.find(column);
  if (it == fields.end() || it->is_null()) return {};
  if (it->is_string()) return it->get<std::string>();
  return it->dump();
}

std::string slug(const std::string& s, bool allow_upper) {
  std::string out;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '.' || c == '_' || c == '-') {
      out += allow_upper ? c : static_cast<char>(std::tolower(u));
    } else if (!out.empty() && out.back() != '-') {
      out += '-';
    }
  }
  while (!out.empty() && !std::isalnum(static_cast<unsigned char>(out.front()))) out.erase(out.begin());
  return out;
}

}  // namespace

Result<std::string> readMaybeGzipFile(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) return Error::io("cannot open " + path + ": " + std::strerror(errno));
  gzbuffer(f, 1 << 17);
  std::string out;
  char buf[1 << 16];
  while (true) {
    const int n = gzread(f, buf, sizeof buf);
    if (n < 0) {
      int errnum = 0;
      const std::string msg = gzerror(f, &errnum);
      gzclose(f);
      return Error::io("cannot read " + path + ": " + msg);
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  gzclose(f);
  return out;
}

Result<std::vector<std::vector<std::string>>> parseCsv(const std::string& data, std::vector<std::size_t>* row_lines) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false;
  bool field_started = false;
  std::size_t line = 1, row_line = 1;
  for (std::size_t i = 0; i < data.size(); ++i) {
    const char c = data[i];
    if (c == '\n') ++line;
    if (quoted) {
      if (c == '"') {
        if (i + 1 < data.size() && data[i + 1] == '"') {
          field.push_back('"');
          ++i;
        } else {
          quoted = false;
        }
      } else {
        field.push_back(c);
      }
      continue;
    }
    if (c == '"' && !field_started) {
      quoted = true;
      field_started = true;
    } else if (c == ',') {
      row.push_back(std::move(field));
      field.clear();
      field_started = false;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < data.size() && data[i + 1] == '\n') {
        ++i;
        ++line;
      }
      if (c == '\r' && data[i] == '\r') ++line;  // a lone CR ends a line too
      row.push_back(std::move(field));
      field.clear();
      field_started = false;
      if (!(row.size() == 1 && row[0].empty())) {
        rows.push_back(std::move(row));
        if (row_lines) row_lines->push_back(row_line);
      }
      row.clear();
      row_line = line;
    } else {
      field.push_back(c);
      field_started = true;
    }
  }
  if (quoted) return Error::malformed("line " + std::to_string(row_line) + ": the file ends inside a quoted field");
  if (field_started || !row.empty()) {
    row.push_back(std::move(field));
    rows.push_back(std::move(row));
    if (row_lines) row_lines->push_back(row_line);
  }
  return rows;
}

Result<std::vector<TicketRecord>> readTicketRecords(const std::string& path) {
  auto data = readMaybeGzipFile(path);
  if (!data) return data.error();
  return parseTicketRecords(
      *data,
      endsWith(path, ".csv") || endsWith(path, ".csv.gz") ? TicketFileFormat::kCsv : TicketFileFormat::kJsonLines,
      path);
}

Result<std::vector<TicketRecord>> parseTicketRecords(const std::string& data, TicketFileFormat format,
                                                     const std::string& path) {
  std::vector<TicketRecord> out;
  if (format == TicketFileFormat::kCsv) {
    std::vector<std::size_t> row_lines;
    auto rows = parseCsv(data, &row_lines);
    if (!rows) return Error::malformed(path + ": " + rows.error().message);
    if (rows->empty()) return Error::malformed(path + ": no header row");
    const auto& header = rows->front();
    for (std::size_t k = 0; k < header.size(); ++k)
      if (!isValidUtf8(header[k]))
        return Error::malformed(path + ": line " + std::to_string(row_lines.front()) + ": header column " +
                                std::to_string(k + 1) + " is not valid UTF-8");
    for (std::size_t r = 1; r < rows->size(); ++r) {
      const auto& row = (*rows)[r];
      TicketRecord rec;
      rec.line = row_lines[r];
      rec.fields = json::object();
      for (std::size_t k = 0; k < header.size() && k < row.size(); ++k) rec.fields[header[k]] = row[k];
      out.push_back(std::move(rec));
    }
    return out;
  }
  std::size_t line_no = 0, pos = 0;
  const std::string& s = data;
  while (pos < s.size()) {
    std::size_t nl = s.find('\n', pos);
    if (nl == std::string::npos) nl = s.size();
    ++line_no;
    std::string line = s.substr(pos, nl - pos);
    pos = nl + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    TicketRecord rec;
    rec.line = line_no;
    // parseJsonText, not json::parse: the latter ends a document at a NUL byte.
    if (auto j = parseJsonText(line); j && j->is_object()) rec.fields = std::move(*j);
    rec.raw = std::move(line);
    out.push_back(std::move(rec));
  }
  return out;
}

Result<ColumnMap> ColumnMap::parse(const std::string& spec) {
  ColumnMap map;
  std::stringstream in(spec);
  for (std::string item; std::getline(in, item, ',');) {
    if (item.empty()) continue;
    const auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == item.size())
      return Error::invalidArgument("column map entry '" + item + "' is not field=column");
    const std::string field = item.substr(0, eq);
    if (!mappableFields().count(field)) {
      std::string known;
      for (const auto& f : mappableFields()) known += (known.empty() ? "" : ", ") + f;
      return Error::invalidArgument("column map: unknown ticket field '" + field + "' (one of: " + known + ")");
    }
    map.columns[field] = item.substr(eq + 1);
  }
  return map;
}

std::string ticketLabel(const Ticket& ticket) {
  auto label = ticket.metadata.find("label");
  return label != ticket.metadata.end() && label->is_string() ? label->get<std::string>() : std::string();
}

Result<Ticket> ticketFromRecord(const TicketRecord& record, const ColumnMap& map, const TicketDefaults& defaults) {
  const std::string where = "line " + std::to_string(record.line) + ": ";
  if (!record.fields.is_object())
    return Error::malformed(where + (isValidUtf8(record.raw) ? "not a JSON object" : "not valid UTF-8"));
  for (const auto& [column, value] : record.fields.items()) {
    if (value.is_string() && !isValidUtf8(value.get_ref<const std::string&>()))
      return Error::malformed(where + "column '" + column + "' is not valid UTF-8 (the file must be UTF-8)");
  }
  if (map.empty() && record.fields.contains("schema_version")) {
    auto t = parseTicket(record.raw.empty() ? record.fields.dump() : record.raw);
    if (!t) return Error{t.error().code, where + t.error().message, false, -1};
    return t;
  }
  auto column = [&](const std::string& field, std::initializer_list<const char*> fallbacks) {
    if (auto it = map.columns.find(field); it != map.columns.end()) return textOf(record.fields, it->second);
    std::string v = textOf(record.fields, field);
    for (const char* f : fallbacks)
      if (v.empty()) v = textOf(record.fields, f);
    return v;
  };
  json t = {{"schema_version", 1}};
  json metadata = json::object();
  std::string id = column("id", {"ticket_id", "number", "key"});
  if (id.empty()) id = "line-" + std::to_string(record.line);
  t["id"] = slug(id, true).substr(0, 128);
  std::string tenant = slug(column("tenant", {}), false).substr(0, 64);
  t["tenant"] = tenant.empty() ? defaults.tenant : tenant;
  const std::string body = column("body", {"text", "description"});
  if (body.empty()) return Error::schema(where + "field 'body': no text (map a column with --column-map body=COLUMN)");
  t["body"] = body;
  if (auto subject = column("subject", {"title", "summary"}); !subject.empty())
    t["subject"] = utf8Prefix(subject, 1000);
  std::string created = column("created_at", {"created", "opened_at"});
  if (created.empty() || !parseRfc3339(created)) {
    if (!created.empty()) metadata["created_at_original"] = created;
    created = defaults.created_at;
  }
  t["created_at"] = created;
  std::string priority = column("priority", {});
  std::string lower;
  for (char c : priority) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  static const std::map<std::string, std::string> kPriorities = {
      {"low", "low"},         {"normal", "normal"}, {"medium", "normal"}, {"high", "high"}, {"urgent", "urgent"},
      {"critical", "urgent"}, {"p1", "urgent"},     {"p2", "high"},       {"p3", "normal"}, {"p4", "low"}};
  if (auto it = kPriorities.find(lower); it != kPriorities.end()) {
    t["priority"] = it->second;
  } else if (!priority.empty()) {
    metadata["priority_original"] = utf8Prefix(priority, 200);
  }
  std::string system = column("source_system", {});
  static const std::set<std::string> kSystems = {"email", "web",  "jira",  "servicenow", "zendesk",
                                                 "api",   "chat", "phone", "other"};
  if (!kSystems.count(system)) system = defaults.source_system;
  json source = {{"system", system}};
  if (auto ref = column("source_ref", {}); !ref.empty()) source["ref"] = utf8Prefix(ref, 256);
  t["source"] = source;
  json requester = json::object();
  if (auto v = column("requester_name", {}); !v.empty()) requester["name"] = utf8Prefix(v, 256);
  if (auto v = column("requester_email", {}); !v.empty() && v.find('@') != std::string::npos) requester["email"] = v;
  if (auto v = column("requester_department", {}); !v.empty()) requester["department"] = utf8Prefix(v, 256);
  if (!requester.empty()) t["requester"] = requester;
  if (auto rev = column("revision", {});
      !rev.empty() && rev.find_first_not_of("0123456789") == std::string::npos && rev.size() < 15)
    t["revision"] = std::stoll(rev);
  // The helpdesk's own category, when the file has one: kept for evaluation (metadata.label),
  // never sent to a model.
  if (auto label = column("label", {"category"}); !label.empty()) metadata["label"] = utf8Prefix(label, 200);
  if (!metadata.empty()) t["metadata"] = metadata;
  auto ticket = parseTicket(t.dump());
  if (!ticket) return Error{ticket.error().code, where + ticket.error().message, false, -1};
  return ticket;
}

}  // namespace ticketflow
