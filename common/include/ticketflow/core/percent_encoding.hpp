#pragma once
// Percent-encoding of URL parts (RFC 3986): a query value sent to a ticket system, the user and
// password of a Redis URL. Everything but the unreserved characters is encoded.

#include <string>
#include <string_view>

#include "ticketflow/core/result.hpp"

namespace ticketflow {

// Letters, digits and "-._~" as they are; every other byte as %XX.
std::string percentEncode(std::string_view text);

// %XX escapes decoded; a '%' not followed by two hex digits is an error. '+' stays '+'.
Result<std::string> percentDecode(std::string_view text);

}  // namespace ticketflow
