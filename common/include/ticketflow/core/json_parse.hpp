#pragma once
// JSON text to nlohmann's document, parsed by simdjson: a result (about 1.3 KB) becomes a
// document in 9 µs where nlohmann::json::parse takes 24 (a one-off comparison on a result
// taken from the pipeline), and its parse with validation went from 34 to 20 µs
// (bench/codec_bench). The document is the one
// nlohmann::json::parse would build (integers >= 0 unsigned, negative ones signed, the last of
// duplicate keys); text simdjson refuses is handed to nlohmann::json::parse, whose verdict stands.

#include <optional>
#include <string_view>

#include <nlohmann/json.hpp>

namespace ticketflow {

// The document, or nullopt when `text` is not valid JSON.
std::optional<nlohmann::json> parseJsonText(std::string_view text);

}  // namespace ticketflow
