// Any JSON document against every shipped schema: the validator never crashes, and the verdict
// does not depend on what its messages may disclose.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "ticketflow/core/embedded.hpp"
#include "ticketflow/core/json_parse.hpp"
#include "ticketflow/schema/validator.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto doc = ticketflow::parseJsonText(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!doc) return 0;
  const auto& registry = ticketflow::schema::SchemaRegistry::builtin();
  for (const auto& file : ticketflow::embeddedFiles()) {
    constexpr std::string_view kPrefix = "schemas/";
    if (!file.path.starts_with(kPrefix) || !file.path.ends_with(".schema.json")) continue;
    const std::string name(file.path.substr(kPrefix.size()));
    const auto told = registry.validate(name, *doc, 4, ticketflow::schema::Disclosure::kValues);
    const auto untold = registry.validate(name, *doc, 4, ticketflow::schema::Disclosure::kSchemaOnly);
    if (told.size() != untold.size()) std::abort();
  }
  return 0;
}
