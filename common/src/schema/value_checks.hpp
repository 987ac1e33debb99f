#pragma once
// Checks of single values for the JSON Schema validator (validator.cpp only).
#include <regex>
#include <string>

#include <nlohmann/json.hpp>

namespace ticketflow::schema::value_checks {

// The JSON type name of `v` as error messages give it ("integer" for a value stored as one).
std::string typeName(const nlohmann::json& v);
bool isInteger(const nlohmann::json& v);
// Equality as JSON Schema defines it (1 == 1.0; objects and arrays compared deeply).
bool jsonEqual(const nlohmann::json& a, const nlohmann::json& b);
// Whether `re` matches somewhere in `s` ("pattern" is unanchored); false for input over the
// regex size cap, which std::regex could not search in bounded time and stack.
bool regexFinds(const std::string& s, const std::regex& re);
// Whether `s` is a valid `format` (unknown formats pass, as the specification says).
bool validFormat(const std::string& format, const std::string& s);

}  // namespace ticketflow::schema::value_checks
