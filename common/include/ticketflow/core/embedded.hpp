#pragma once
// Files compiled into the binary (schemas/, the default configuration and its companions), so
// `ticketflow demo` and schema validation work from any directory and in a bare container.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ticketflow {

struct EmbeddedFile {
  std::string_view path;  // relative to the source root, e.g. "schemas/ticket.schema.json"
  std::string_view content;
};

const std::vector<EmbeddedFile>& embeddedFiles();

// The embedded file at `path`, or nullopt.
std::optional<std::string_view> embeddedFile(std::string_view path);

}  // namespace ticketflow
