// What the validator asks of single values: their JSON type, integer-ness and equality as JSON
// Schema defines them, and the string formats it checks (date, date-time, email, uri, ...).
#include "value_checks.hpp"

#include <cmath>

namespace ticketflow::schema::value_checks {

using nlohmann::json;

std::string typeName(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "integer";
    case json::value_t::number_float:
      return "number";
    case json::value_t::string:
      return "string";
    case json::value_t::array:
      return "array";
    case json::value_t::object:
      return "object";
    default:
      return "unknown";
  }
}

bool isInteger(const json& v) {
  if (v.is_number_integer()) return true;
  if (v.is_number_float()) {
    const double d = v.get<double>();
    return std::isfinite(d) && std::floor(d) == d;
  }
  return false;
}

// JSON equality where 1 == 1.0, as JSON Schema requires.
bool jsonEqual(const json& a, const json& b) {
  if (a.is_number() && b.is_number()) return a.get<double>() == b.get<double>();
  if (a.type() != b.type()) return false;
  if (a.is_array()) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
      if (!jsonEqual(a[i], b[i])) return false;
    return true;
  }
  if (a.is_object()) {
    if (a.size() != b.size()) return false;
    for (const auto& [k, v] : a.items()) {
      auto it = b.find(k);
      if (it == b.end() || !jsonEqual(v, *it)) return false;
    }
    return true;
  }
  return a == b;
}

namespace {

bool isDigits(const std::string& s, std::size_t pos, std::size_t len) {
  if (pos + len > s.size()) return false;
  for (std::size_t i = pos; i < pos + len; ++i)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

int num(const std::string& s, std::size_t pos, std::size_t len) {
  return std::stoi(s.substr(pos, len));
}

bool validDate(const std::string& s) {
  if (s.size() != 10 || !isDigits(s, 0, 4) || s[4] != '-' || !isDigits(s, 5, 2) || s[7] != '-' || !isDigits(s, 8, 2))
    return false;
  const int y = num(s, 0, 4), m = num(s, 5, 2), d = num(s, 8, 2);
  if (m < 1 || m > 12 || d < 1) return false;
  static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return d <= days[m - 1] + ((m == 2 && leap) ? 1 : 0);
}

// RFC 3339 date-time, as ajv-formats checks it (full-date "T" full-time, offset required).
bool validDateTime(const std::string& s) {
  if (s.size() < 20) return false;
  if (!validDate(s.substr(0, 10))) return false;
  if (s[10] != 'T' && s[10] != 't' && s[10] != ' ') return false;
  if (!isDigits(s, 11, 2) || s[13] != ':' || !isDigits(s, 14, 2) || s[16] != ':' || !isDigits(s, 17, 2)) return false;
  const int hh = num(s, 11, 2), mm = num(s, 14, 2), ss = num(s, 17, 2);
  if (hh > 23 || mm > 59 || ss > 60) return false;
  std::size_t pos = 19;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    const std::size_t start = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
    if (pos == start) return false;
  }
  if (pos >= s.size()) return false;
  if (s[pos] == 'Z' || s[pos] == 'z') return pos + 1 == s.size();
  if (s[pos] != '+' && s[pos] != '-') return false;
  if (!isDigits(s, pos + 1, 2) || pos + 3 >= s.size() || s[pos + 3] != ':' || !isDigits(s, pos + 4, 2)) return false;
  if (num(s, pos + 1, 2) > 23 || num(s, pos + 4, 2) > 59) return false;
  return pos + 6 == s.size();
}

// GCC 12's std::regex matches by recursion, a stack frame or more per character (about 200 bytes
// each), so tens of kilobytes overflow a thread's stack and crash the process. A string longer
// than this never reaches a regex: it fails its pattern or format. Every patterned string in our
// schemas has a maxLength far below it.
constexpr std::size_t kMaxRegexInputBytes = 4096;

bool regexMatches(const std::string& s, const std::regex& re) {
  return s.size() <= kMaxRegexInputBytes && std::regex_match(s, re);
}
}  // namespace

bool regexFinds(const std::string& s, const std::regex& re) {
  return s.size() <= kMaxRegexInputBytes && std::regex_search(s, re);
}

bool validFormat(const std::string& format, const std::string& s) {
  if (format == "date-time") return validDateTime(s);
  if (format == "date") return validDate(s);
  if (format == "email") {
    static const std::regex re(
        R"(^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$)");
    return regexMatches(s, re);
  }
  if (format == "uri") {
    static const std::regex re(R"(^[a-zA-Z][a-zA-Z0-9+.-]*:[^\s]*$)");
    return regexMatches(s, re);
  }
  if (format == "uuid") {
    static const std::regex re(R"(^(?:urn:uuid:)?[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$)");
    return regexMatches(s, re);
  }
  return true;  // unknown formats are annotations only
}

}  // namespace ticketflow::schema::value_checks
