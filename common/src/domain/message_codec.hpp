#pragma once
// How the message types are read from and written to JSON, shared by messages.cpp (tickets,
// routed tickets, shadow requests, feedback) and ticket_results.cpp (results, updates, dead
// letters). common/src/domain only.
#include <stdexcept>
#include <string_view>

#include <nlohmann/json.hpp>

#include "ticketflow/core/json_writer.hpp"
#include "ticketflow/domain/messages.hpp"

namespace ticketflow::detail {

using json = nlohmann::json;

Result<json> parseValidated(std::string_view bytes, const char* schema);
void writeSource(JsonWriter& w, const TicketSource& s);
TicketSource sourceFrom(const json& j);
Ticket ticketFrom(const json& j);
void writeClassification(JsonWriter& w, const Classification& c);
Classification classificationFrom(const json& j);
Answer answerFrom(const json& a);
void writeRoute(JsonWriter& w, const Route& r);
Route routeFrom(const json& j);
void writeUsage(JsonWriter& w, const TokenUsage& u);
void writeAnswer(JsonWriter& w, const Answer& a);
void writeTicket(JsonWriter& w, const Ticket& t);
TokenUsage usageFrom(const json& j);
ErrorCode parseErrorCode(const std::string& s);

// Parses, validates and builds a T. What the schema cannot bound in a JSON number (an integer
// past int64) throws while building; it is a schema violation naming the field, like the rest.
template <typename T, typename Build>
Result<T> parseAs(std::string_view bytes, const char* schema, Build build) {
  auto doc = parseValidated(bytes, schema);
  if (!doc) return doc.error();
  try {
    return build(*doc);
  } catch (const std::out_of_range& e) {
    return Error::schema(e.what());
  } catch (const std::invalid_argument& e) {
    return Error::schema(e.what());
  } catch (const json::exception&) {
    return Error::schema("a field has an unexpected type or value");
  }
}

}  // namespace ticketflow::detail
