#include "ticketflow/classify/labelled_data.hpp"

#include <nlohmann/json.hpp>

#include "ticketflow/domain/ticket_file.hpp"

namespace ticketflow::classify {
namespace {

bool endsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

Result<std::vector<LabelledText>> readLabelledFile(const std::string& path, const std::string& text_col,
                                                   const std::string& label_col) {
  auto data = readMaybeGzipFile(path);
  if (!data) return data.error();
  std::vector<LabelledText> out;
  const bool csv = endsWith(path, ".csv") || endsWith(path, ".csv.gz");
  if (csv) {
    auto rows = parseCsv(*data);
    if (!rows) return Error::malformed(path + ": " + rows.error().message);
    if (rows->empty()) return Error::malformed(path + ": empty file");
    const auto& header = rows->front();
    int ti = -1;
    int li = -1;
    for (std::size_t k = 0; k < header.size(); ++k) {
      if (header[k] == text_col) ti = static_cast<int>(k);
      if (header[k] == label_col) li = static_cast<int>(k);
    }
    if (ti < 0) return Error::invalidArgument(path + ": no column '" + text_col + "' in the header");
    if (li < 0) return Error::invalidArgument(path + ": no column '" + label_col + "' in the header");
    for (std::size_t r = 1; r < rows->size(); ++r) {
      auto& row = (*rows)[r];
      if (row.size() <= static_cast<std::size_t>(std::max(ti, li)))
        return Error::malformed(path + ": row " + std::to_string(r + 1) + " has " + std::to_string(row.size()) +
                                " fields");
      out.push_back({std::move(row[static_cast<std::size_t>(ti)]), std::move(row[static_cast<std::size_t>(li)])});
    }
  } else {
    std::size_t line_no = 0;
    std::size_t pos = 0;
    const std::string& s = *data;
    while (pos < s.size()) {
      std::size_t nl = s.find('\n', pos);
      if (nl == std::string::npos) nl = s.size();
      ++line_no;
      const std::string_view line(s.data() + pos, nl - pos);
      pos = nl + 1;
      if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
      nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.is_object())
        return Error::malformed(path + ":" + std::to_string(line_no) + ": not a JSON object");
      auto t = j.find(text_col);
      auto l = j.find(label_col);
      if (t == j.end() || !t->is_string())
        return Error::malformed(path + ":" + std::to_string(line_no) + ": no string field '" + text_col + "'");
      if (l == j.end() || !l->is_string())
        return Error::malformed(path + ":" + std::to_string(line_no) + ": no string field '" + label_col + "'");
      out.push_back({t->get<std::string>(), l->get<std::string>()});
    }
  }
  if (out.empty()) return Error::malformed(path + ": no labelled rows");
  return out;
}

}  // namespace ticketflow::classify
