#pragma once
// Where ticket updates go besides the tickets.updates topic: a generic webhook (JSON, signed
// with HMAC-SHA256), Jira Cloud (a comment and labels on the source issue) and ServiceNow (a
// Table API PATCH of the incident's work notes, category and assignment group). Each write is
// one HTTP exchange (or a few); the result-writer stage retries retriable errors with backoff
// and dead-letters after its bound.
//
// Exactly once where a person reads it: every write carries a marker of (tenant, ticket,
// revision) — the webhook's Idempotency-Key header "<ticket_id>:<revision>"; a Jira comment
// property and last line; the last line of a ServiceNow work note. When the result writer may have written before
// (it recorded "about to write" and never "written": a crash between the two), Jira and
// ServiceNow look for their own earlier comment or work note by that marker and do not add a
// second one; a ServiceNow field PATCH is repeated only for fields whose values differ. A webhook
// receiver dedupes on the Idempotency-Key (docs/pipeline.md).

#include <map>
#include <memory>
#include <string>

#include "ticketflow/core/result.hpp"
#include "ticketflow/domain/messages.hpp"
#include "ticketflow/http/client.hpp"

namespace ticketflow::results {

class ResultSink {
 public:
  virtual ~ResultSink() = default;
  virtual const std::string& name() const = 0;
  // `may_have_written`: an earlier attempt may have written this update here (see above), so
  // look before writing again. Errors: retriable for 408/429/5xx and transport failures
  // (retry_after_ms when the server said), not retriable for other 4xx (the update or the
  // sink's settings are wrong).
  virtual Status write(const TicketUpdate& update, bool may_have_written) = 0;
};

// "<ticket_id>:<revision>": the webhook's Idempotency-Key.
std::string idempotencyKey(const TicketUpdate& update);
// "ticketflow:<tenant>:<ticket_id>:<revision>": what marks our comment or work note in a ticket.
std::string writeMarker(const TicketUpdate& update);
// "[ticketflow:<tenant>:<ticket_id>:<revision>]": the last line of our comment or work note (the
// brackets keep revision 1 from matching revision 12).
std::string markerLine(const TicketUpdate& update);

struct WebhookOptions {
  std::string name = "webhook";
  std::string url;
  std::string secret;  // HMAC key, from the environment
  std::map<std::string, std::string> headers;
};

struct JiraOptions {
  std::string name = "jira";
  std::string base_url;  // https://<site>.atlassian.net
  std::string email;
  std::string api_token;  // from the environment
  std::string label_prefix = "ticketflow-";
};

struct ServiceNowOptions {
  std::string name = "servicenow";
  std::string instance_url;  // https://<instance>.service-now.com
  std::string username;
  std::string password;                                  // from the environment
  std::map<std::string, std::string> assignment_groups;  // category -> group
};

std::unique_ptr<ResultSink> makeWebhookSink(WebhookOptions options, std::shared_ptr<http::HttpClient> http);
std::unique_ptr<ResultSink> makeJiraSink(JiraOptions options, std::shared_ptr<http::HttpClient> http);
std::unique_ptr<ResultSink> makeServiceNowSink(ServiceNowOptions options, std::shared_ptr<http::HttpClient> http);

// The comment text both ticket systems show: reply, steps, and the triage facts.
std::string updateNote(const TicketUpdate& update);

}  // namespace ticketflow::results
