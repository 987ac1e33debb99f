// Configuration text from operators: it loads, or it is refused with a ConfigError (file, line,
// field, reason). Any other exception, a crash, a hang or a blow-up of memory is a bug.
#include <cstdint>
#include <string>

#include "ticketflow/config/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const ticketflow::EnvLookup env = [](const std::string& name) -> std::optional<std::string> {
    if (name == "SET") return std::string("value");
    return std::nullopt;
  };
  try {
    (void)ticketflow::loadConfigText(text, "fuzz.yaml", "/nonexistent", env);
  } catch (const ticketflow::ConfigError&) {
  }
  try {
    (void)ticketflow::parseYamlDocuments(text, "fuzz.yaml");
  } catch (const ticketflow::ConfigError&) {
  }
  return 0;
}
