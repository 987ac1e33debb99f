#include "text_normalize.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <type_traits>

#include "ticketflow/classify/text_features.hpp"
#include "ticketflow/core/utf8.hpp"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace ticketflow::classify {
namespace {

// --- UTF-8 -----------------------------------------------------------------------------------

void appendUtf8(char32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Simple lower-casing for the scripts helpdesk text is most often written in; other code points
// are left as they are (still valid, still hashed consistently).
char32_t foldCase(char32_t cp) {
  if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
  if (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) return cp + 0x20;
  if (cp >= 0x100 && cp <= 0x137) return cp | 1;
  if (cp >= 0x139 && cp <= 0x148) return (cp & 1) ? cp + 1 : cp;
  if (cp >= 0x14A && cp <= 0x177) return cp | 1;
  if (cp == 0x178) return 0xFF;
  if (cp >= 0x179 && cp <= 0x17E) return (cp & 1) ? cp + 1 : cp;
  if (cp >= 0x391 && cp <= 0x3A9 && cp != 0x3A2) return cp + 0x20;
  if (cp >= 0x410 && cp <= 0x42F) return cp + 0x20;
  if (cp >= 0x400 && cp <= 0x40F) return cp + 0x50;
  return cp;
}

bool isSeparatorCp(char32_t cp) {
  return (cp >= 0xA0 && cp <= 0xBF) || cp == 0xD7 || cp == 0xF7 || (cp >= 0x2000 && cp <= 0x206F) ||
         (cp >= 0x3000 && cp <= 0x303F) || (cp >= 0xFF01 && cp <= 0xFF0F) || cp == 0xFEFF || cp == 0xFFFD ||
         (cp >= 0xFE00 && cp <= 0xFE0F) || cp == 0x200D;
}

// Pictographs stand alone: "printer🔥" is the word "printer" and the token "🔥".
bool isSymbolCp(char32_t cp) {
  return (cp >= 0x1F000 && cp <= 0x1FAFF) || (cp >= 0x2600 && cp <= 0x27BF) || (cp >= 0x2B00 && cp <= 0x2BFF);
}

// --- chunk classification ----------------------------------------------------------------------

bool isAsciiSpace(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool isDigit(char c) {
  return c >= '0' && c <= '9';
}
bool isAlpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool isHex(char c) {
  return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
char lowerAscii(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
}

bool startsWithNoCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i)
    if (lowerAscii(s[i]) != prefix[i]) return false;
  return true;
}

bool isIpv4(std::string_view s) {
  // d{1,3}(.d{1,3}){3} with an optional :port or /prefix.
  int groups = 0;
  std::size_t i = 0;
  while (groups < 4) {
    std::size_t digits = 0;
    while (i < s.size() && isDigit(s[i]) && digits < 4) ++i, ++digits;
    if (digits == 0 || digits > 3) return false;
    ++groups;
    if (groups < 4) {
      if (i >= s.size() || s[i] != '.') return false;
      ++i;
    }
  }
  if (i == s.size()) return true;
  if (s[i] != ':' && s[i] != '/') return false;
  for (++i; i < s.size(); ++i)
    if (!isDigit(s[i])) return false;
  return true;
}

bool isEmail(std::string_view s) {
  const auto at = s.find('@');
  if (at == std::string_view::npos || at == 0) return false;
  const auto dot = s.find('.', at + 2);
  return dot != std::string_view::npos && dot + 1 < s.size() && s.find('@', at + 1) == std::string_view::npos;
}

bool isPath(std::string_view s) {
  if (s.size() >= 3 && isAlpha(s[0]) && s[1] == ':' && (s[2] == '\\' || s[2] == '/')) return true;
  if (s.size() >= 3 && s[0] == '\\' && s[1] == '\\') return true;
  if (s.size() >= 3 && s[0] == '~' && s[1] == '/') return true;
  if (s.size() >= 3 && s[0] == '/' && s.find('/', 1) != std::string_view::npos) return true;
  return false;
}

bool isErrorCode(std::string_view s) {
  // 0x80070005, ORA-00942, ERR_CONNECTION_RESET-like codes with digits, E1234, KB5005565.
  if (s.size() >= 6 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    for (std::size_t i = 2; i < s.size(); ++i)
      if (!isHex(s[i])) return false;
    return true;
  }
  std::size_t i = 0;
  while (i < s.size() && isAlpha(s[i])) ++i;
  if (i == 0 || i > 10) return false;
  bool separated = false;
  if (i < s.size() && (s[i] == '-' || s[i] == '_')) {
    separated = true;
    ++i;
  }
  std::size_t digits = 0;
  while (i < s.size() && isDigit(s[i])) ++i, ++digits;
  return i == s.size() && (digits >= 4 || (separated && digits >= 3));
}

std::string_view trimPunct(std::string_view s) {
  auto strip = [](char c) {
    return c == '(' || c == ')' || c == '[' || c == ']' || c == '<' || c == '>' || c == '"' || c == '\'' || c == ',' ||
           c == '.' || c == ';' || c == ':' || c == '!' || c == '?' || c == '{' || c == '}';
  };
  while (!s.empty() && strip(s.front())) s.remove_prefix(1);
  while (!s.empty() && strip(s.back())) s.remove_suffix(1);
  return s;
}

const char* typedToken(std::string_view chunk) {
  const std::string_view s = trimPunct(chunk);
  if (s.size() < 3) return nullptr;
  if (startsWithNoCase(s, "http://") || startsWithNoCase(s, "https://") || startsWithNoCase(s, "ftp://") ||
      startsWithNoCase(s, "www."))
    return "_url_";
  if (isEmail(s)) return "_email_";
  if (isDigit(s[0]) && isIpv4(s)) return "_ip_";
  if (isPath(s)) return "_path_";
  if (isErrorCode(s)) return "_errcode_";
  return nullptr;
}

class TokenWriter {
 public:
  TokenWriter(std::string& out, std::vector<std::uint32_t>* starts, std::vector<std::uint32_t>* ends)
      : out_(out), starts_(starts), ends_(ends) {}

  void begin() {
    out_.push_back(' ');
    start_ = out_.size();
    digits_only_ = true;
  }
  // Appends ASCII letters and digits, lower-cased.
  void asciiRun(std::string_view run) {
    const std::size_t at = out_.size();
    out_.append(run);
    for (std::size_t i = at; i < out_.size(); ++i) {
      const char c = out_[i];
      if (c >= 'A' && c <= 'Z') out_[i] = static_cast<char>(c + 32);
      digits_only_ = digits_only_ && isDigit(c);
    }
  }
  void codePoint(char32_t cp) {
    digits_only_ = false;
    appendUtf8(cp, out_);
  }
  bool open() const { return start_ != kNone; }
  void end() {
    if (!open()) return;
    if (out_.size() == start_) {
      out_.pop_back();
    } else {
      if (digits_only_) {
        out_.resize(start_);
        out_ += "_num_";
      }
      if (starts_) {
        starts_->push_back(static_cast<std::uint32_t>(start_));
        ends_->push_back(static_cast<std::uint32_t>(out_.size()));
      }
    }
    start_ = kNone;
  }
  void whole(std::string_view token) {
    end();
    begin();
    out_ += token;
    digits_only_ = false;
    end();
  }

 private:
  static constexpr std::size_t kNone = static_cast<std::size_t>(-1);
  std::string& out_;
  std::vector<std::uint32_t>* starts_;
  std::vector<std::uint32_t>* ends_;
  std::size_t start_ = kNone;
  bool digits_only_ = true;
};

}  // namespace

// Normalised form is " tok tok tok " with a space before and after every token, so the padded
// token (" tok ") used for character n-grams is a plain slice of the buffer.
void normalizeInto(std::string_view text, std::string& out, std::vector<std::uint32_t>* starts,
                   std::vector<std::uint32_t>* ends) {
  out.clear();
  if (starts) {
    starts->clear();
    ends->clear();
  }
  out.reserve(text.size() + 2);
  TokenWriter w(out, starts, ends);
  std::size_t i = 0;
  const std::size_t n = text.size();
  while (i < n) {
    while (i < n && isAsciiSpace(static_cast<unsigned char>(text[i]))) ++i;
    if (i >= n) break;
    std::size_t j = i;
    while (j < n && !isAsciiSpace(static_cast<unsigned char>(text[j]))) ++j;
    const std::string_view chunk = text.substr(i, j - i);
    if (const char* typed = typedToken(chunk)) {
      w.whole(typed);
      i = j;
      continue;
    }
    for (std::size_t k = i; k < j;) {
      const auto c = static_cast<unsigned char>(text[k]);
      if (c < 0x80) {
        if (isDigit(static_cast<char>(c)) || isAlpha(static_cast<char>(c))) {
          // A run of ASCII letters and digits is appended in one go (the common case).
          std::size_t r = k + 1;
          while (r < j && (isDigit(text[r]) || isAlpha(text[r]))) ++r;
          if (!w.open()) w.begin();
          w.asciiRun(text.substr(k, r - k));
          k = r;
        } else {
          w.end();
          ++k;
        }
        continue;
      }
      char32_t cp = 0;
      const std::size_t len = decodeUtf8(text, k, cp);
      if (len == 0) {  // invalid byte: dropped, and it separates tokens
        w.end();
        ++k;
        continue;
      }
      k += len;
      if (isSeparatorCp(cp)) {
        w.end();
      } else if (isSymbolCp(cp)) {
        w.end();
        w.begin();
        w.codePoint(cp);
        w.end();
      } else {
        if (!w.open()) w.begin();
        w.codePoint(foldCase(cp));
      }
    }
    w.end();
    i = j;
  }
  out.push_back(' ');
}

void normalizeText(std::string_view text, std::string& out) {
  normalizeInto(text, out, nullptr, nullptr);
  // Drop the padding spaces for the public form.
  if (out.size() <= 1) {
    out.clear();
    return;
  }
  out.erase(0, 1);
  out.pop_back();
}

std::string normalizeText(std::string_view text) {
  std::string out;
  normalizeText(text, out);
  return out;
}

}  // namespace ticketflow::classify
