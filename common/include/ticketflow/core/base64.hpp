#pragma once
// Base64 (RFC 4648, no line breaks): binary payloads carried in JSON text (dead letters).
#include <optional>
#include <string>
#include <string_view>

namespace ticketflow {

std::string base64Encode(std::string_view bytes);
std::optional<std::string> base64Decode(std::string_view text);  // nullopt: not base64

}  // namespace ticketflow
