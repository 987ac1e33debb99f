#pragma once
// UTF-8 decoding, one rule for the whole code base (the classifier's text features, the JSON
// writer, isValidUtf8).

#include <cstddef>
#include <string>
#include <string_view>

namespace ticketflow {

// Decodes one code point at text[i]; returns its byte length, or 0 for an invalid sequence
// (overlong, surrogate, out of range or truncated), which the caller skips one byte at a time.
inline std::size_t decodeUtf8(std::string_view text, std::size_t i, char32_t& cp) {
  const auto b0 = static_cast<unsigned char>(text[i]);
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  }
  std::size_t len = 0;
  char32_t min = 0;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2;
    cp = b0 & 0x1F;
    min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3;
    cp = b0 & 0x0F;
    min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4;
    cp = b0 & 0x07;
    min = 0x10000;
  } else {
    return 0;
  }
  if (i + len > text.size()) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(text[i + k]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

inline bool isUtf8Continuation(char c) {
  return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}

// Characters (code points) of UTF-8 text: the bytes that do not continue a sequence.
inline std::size_t utf8CodePointCount(std::string_view s) {
  std::size_t n = 0;
  for (char c : s) n += !isUtf8Continuation(c);
  return n;
}

// At most `limit` bytes of `text`, never splitting a UTF-8 sequence.
inline std::string_view utf8BytePrefix(std::string_view text, std::size_t limit) {
  if (text.size() <= limit) return text;
  std::size_t end = limit;
  while (end > 0 && isUtf8Continuation(text[end])) --end;
  return text.substr(0, end);
}

inline bool isValidUtf8(std::string_view s) {
  char32_t code_point;
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t len = decodeUtf8(s, i, code_point);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

// The first `max_code_points` characters of UTF-8 text (JSON Schema's maxLength counts them).
std::string utf8Prefix(std::string_view s, std::size_t max_code_points);

}  // namespace ticketflow
