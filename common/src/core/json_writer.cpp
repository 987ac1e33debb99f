#include "ticketflow/core/json_writer.hpp"

#include <charconv>
#include <cmath>

#include "ticketflow/core/check.hpp"
#include "ticketflow/core/utf8.hpp"

namespace ticketflow {

void JsonWriter::separate() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (levels_.empty()) {
    TF_CHECK(out_.empty(), "JsonWriter: a second top-level value");
    return;
  }
  Level& level = levels_.back();
  TF_CHECK(!level.object, "JsonWriter: an object member without a key");
  if (!level.empty) out_ += ',';
  level.empty = false;
}

void JsonWriter::open(char bracket, bool object) {
  separate();
  out_ += bracket;
  levels_.push_back({object, true});
}

void JsonWriter::close(char bracket, bool object) {
  TF_CHECK(!levels_.empty() && levels_.back().object == object && !after_key_, "JsonWriter: unbalanced nesting");
  levels_.pop_back();
  out_ += bracket;
}

JsonWriter& JsonWriter::beginObject() {
  open('{', true);
  return *this;
}

JsonWriter& JsonWriter::endObject() {
  close('}', true);
  return *this;
}

JsonWriter& JsonWriter::beginArray() {
  open('[', false);
  return *this;
}

JsonWriter& JsonWriter::endArray() {
  close(']', false);
  return *this;
}

JsonWriter& JsonWriter::key(std::string_view name) {
  TF_CHECK(!levels_.empty() && levels_.back().object && !after_key_, "JsonWriter: a key outside an object");
  Level& level = levels_.back();
  if (!level.empty) out_ += ',';
  level.empty = false;
  appendEscaped(name);
  out_ += ':';
  after_key_ = true;
  return *this;
}

JsonWriter& JsonWriter::value(std::string_view text) {
  separate();
  appendEscaped(text);
  return *this;
}

JsonWriter& JsonWriter::value(bool b) {
  separate();
  out_ += b ? "true" : "false";
  return *this;
}

JsonWriter& JsonWriter::value(double d) {
  separate();
  if (!std::isfinite(d)) {
    out_ += "null";
    return *this;
  }
  char buf[32];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d);
  TF_CHECK(ec == std::errc(), "JsonWriter: double does not fit its buffer");
  const std::string_view digits(buf, static_cast<std::size_t>(end - buf));
  out_ += digits;
  // A double stays a double for the reader (nlohmann prints 3.0, not 3).
  if (digits.find_first_of(".e") == std::string_view::npos) out_ += ".0";
  return *this;
}

JsonWriter& JsonWriter::value(const std::vector<std::string>& texts) {
  beginArray();
  for (const auto& t : texts) value(t);
  return endArray();
}

JsonWriter& JsonWriter::value(const nlohmann::json& document) {
  separate();
  out_ += document.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return *this;
}

JsonWriter& JsonWriter::null() {
  separate();
  out_ += "null";
  return *this;
}

std::string JsonWriter::take() {
  TF_CHECK(levels_.empty() && !after_key_, "JsonWriter: taken with a container still open");
  std::string text = std::move(out_);
  out_.clear();
  return text;
}

void JsonWriter::appendEscaped(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out_.reserve(out_.size() + text.size() + 2);
  out_ += '"';
  std::size_t run = 0;  // start of the bytes not yet copied, all plain
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      char32_t code_point;
      if (const std::size_t len = decodeUtf8(text, i, code_point)) {
        i += len;
        continue;
      }
      out_.append(text.data() + run, i - run);
      out_ += "\xEF\xBF\xBD";  // U+FFFD for a byte that is not UTF-8
      run = ++i;
      continue;
    }
    out_.append(text.data() + run, i - run);
    switch (c) {
      case '"':
        out_ += "\\\"";
        break;
      case '\\':
        out_ += "\\\\";
        break;
      case '\b':
        out_ += "\\b";
        break;
      case '\f':
        out_ += "\\f";
        break;
      case '\n':
        out_ += "\\n";
        break;
      case '\r':
        out_ += "\\r";
        break;
      case '\t':
        out_ += "\\t";
        break;
      default:
        out_ += "\\u00";
        out_ += kHex[c >> 4];
        out_ += kHex[c & 0xF];
    }
    run = ++i;
  }
  out_.append(text.data() + run, text.size() - run);
  out_ += '"';
}

}  // namespace ticketflow
