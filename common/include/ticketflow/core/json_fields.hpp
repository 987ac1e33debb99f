#pragma once
// Reading optional fields of an already-validated JSON document into typed values.

#include <nlohmann/json.hpp>

namespace ticketflow {

// Sets `out` from obj[key] when the field is present and not null; leaves the default otherwise.
template <typename T>
void readIfPresent(const nlohmann::json& obj, const char* key, T& out) {
  if (auto it = obj.find(key); it != obj.end() && !it->is_null()) out = it->template get<T>();
}

}  // namespace ticketflow
