#pragma once
// Reading labelled ticket texts for training and evaluation: JSON Lines or CSV (RFC 4180, with
// a header row), either optionally gzip-compressed (.gz, read with zlib).

#include <string>
#include <vector>

#include "ticketflow/core/result.hpp"

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

// The bytes of a file, gunzipped when it is gzip data; kIo error if it cannot be read.
Result<std::string> readMaybeGzipFile(const std::string& path);

}  // namespace ticketflow::classify
