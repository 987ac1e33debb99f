#pragma once
// Reading fields of an already-validated JSON document into typed values.

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>

#include <nlohmann/json.hpp>

namespace ticketflow {

// obj's value as T. An integer is range-checked: nlohmann's own conversion of 1e300 or 2^63 to
// int64 is undefined or wraps to a negative number, so out of range (or a fraction) throws
// std::out_of_range naming the field, never the value.
template <typename T>
T fieldAs(const nlohmann::json& value, const char* key) {
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    using Limits = std::numeric_limits<T>;
    const auto outOfRange = [key] { return std::out_of_range(std::string("field '") + key + "' is out of range"); };
    if (value.is_number_float()) {
      const double d = value.get<double>();
      // 2^63 is exactly representable; every double below it converts without overflow.
      if (!(d >= static_cast<double>(Limits::min()) && d < std::ldexp(1.0, Limits::digits)) || d != std::trunc(d))
        throw outOfRange();
      return static_cast<T>(d);
    }
    if (value.is_number_unsigned()) {
      if (value.get<std::uint64_t>() > static_cast<std::uint64_t>(Limits::max())) throw outOfRange();
      return static_cast<T>(value.get<std::uint64_t>());
    }
    if (value.is_number_integer()) {
      const auto n = value.get<std::int64_t>();
      if constexpr (std::is_signed_v<T>) {
        if (n < static_cast<std::int64_t>(Limits::min()) || n > static_cast<std::int64_t>(Limits::max()))
          throw outOfRange();
      } else {
        if (n < 0 || static_cast<std::uint64_t>(n) > static_cast<std::uint64_t>(Limits::max())) throw outOfRange();
      }
      return static_cast<T>(n);
    }
  }
  return value.template get<T>();
}

// Sets `out` from obj[key] when the field is present and not null; leaves the default otherwise.
template <typename T>
void readIfPresent(const nlohmann::json& obj, const char* key, T& out) {
  if (auto it = obj.find(key); it != obj.end() && !it->is_null()) out = fieldAs<T>(*it, key);
}

}  // namespace ticketflow
