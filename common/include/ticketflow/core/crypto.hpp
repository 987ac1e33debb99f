#pragma once
// Digests for signatures and keys (OpenSSL underneath).

#include <string>
#include <string_view>

namespace ticketflow {

std::string sha256Hex(std::string_view data);
// HMAC-SHA256 of `data` under `key`, lower-case hex: the webhook signature.
std::string hmacSha256Hex(std::string_view key, std::string_view data);
// 16 random bytes as 32 lower-case hex digits (W3C trace-context trace id).
std::string randomTraceId();
// Whether `s` has that form: only such a trace id is carried on (a header of any size would
// ride on every output).
bool isTraceId(std::string_view s);

}  // namespace ticketflow
