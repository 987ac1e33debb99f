#pragma once
// JSON text written straight from values, with no document in between. Every hop serialises its
// message here: building nlohmann's document for a routed ticket costs more than twice what
// printing it does (bench/codec_bench), and the pipeline does it several times per ticket.
//
// Output is compact and valid UTF-8: strings are escaped as nlohmann's dump() escapes them, and
// a byte that is not part of valid UTF-8 becomes U+FFFD (where dump() would throw). Doubles are
// printed in their shortest round-trip form ("0.25", "1e-07", "3.0"); NaN and infinities as null.
// Callers are trusted to nest correctly (checked always: a broken nesting is our bug).

#include <charconv>
#include <concepts>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace ticketflow {

class JsonWriter {
 public:
  JsonWriter& beginObject();
  JsonWriter& endObject();
  JsonWriter& beginArray();
  JsonWriter& endArray();
  JsonWriter& key(std::string_view name);

  JsonWriter& value(std::string_view text);
  JsonWriter& value(const std::string& text) { return value(std::string_view(text)); }
  JsonWriter& value(const char* text) { return value(std::string_view(text)); }
  JsonWriter& value(bool b);
  JsonWriter& value(double d);
  template <std::integral T>
  requires(!std::same_as<T, bool>) JsonWriter& value(T n) {
    separate();
    char buf[24];
    const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, n);  // 24 digits hold any 64-bit integer
    // (pointer, length), not (first, last): GCC 12 at -O3 reports a bogus -Wrestrict on the latter.
    out_.append(buf, static_cast<std::size_t>(end - buf));
    return *this;
  }
  JsonWriter& value(const std::vector<std::string>& texts);
  // A document someone else built (a ticket's free-form metadata), written as dump() would.
  JsonWriter& value(const nlohmann::json& document);
  JsonWriter& null();

  template <typename T>
  JsonWriter& field(std::string_view name, const T& v) {
    return key(name).value(v);
  }
  // Optional string fields are left out when empty, as the schemas expect.
  JsonWriter& fieldIfNotEmpty(std::string_view name, const std::string& v) {
    return v.empty() ? *this : field(name, v);
  }

  // The text so far; the writer is empty afterwards.
  std::string take();

 private:
  void separate();
  void open(char bracket, bool object);
  void close(char bracket, bool object);
  void appendEscaped(std::string_view text);

  std::string out_;
  // One entry per open container: whether it is an object, and whether it holds a member yet.
  struct Level {
    bool object;
    bool empty;
  };
  std::vector<Level> levels_;
  bool after_key_ = false;
};

}  // namespace ticketflow
