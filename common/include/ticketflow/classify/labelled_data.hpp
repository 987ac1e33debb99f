#pragma once
// Reading labelled ticket texts for training and evaluation: JSON Lines or CSV (RFC 4180, with
// a header row), either optionally gzip-compressed (.gz, read with zlib).

#include <string>
#include <vector>

#include "ticketflow/core/result.hpp"
#include "ticketflow/domain/ticket_file.hpp"

namespace ticketflow::classify {

struct LabelledText {
  std::string text;
  std::string label;
};

// Reads the whole file (transparently gunzipped). The format comes from the name: *.csv[.gz]
// is CSV, anything else JSON Lines. Rows whose text or label column is missing or not a string
// are an error naming the line; an empty file is an error.
Result<std::vector<LabelledText>> readLabelledFile(const std::string& path, const std::string& text_col,
                                                   const std::string& label_col);

// readMaybeGzipFile() lives with the ticket file reader (domain/ticket_file.hpp).
using ticketflow::readMaybeGzipFile;

}  // namespace ticketflow::classify
