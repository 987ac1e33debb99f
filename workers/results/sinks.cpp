#include "sinks.hpp"

#include <sstream>

#include "ticketflow/core/base64.hpp"
#include "ticketflow/core/crypto.hpp"
#include "ticketflow/core/percent_encoding.hpp"

namespace ticketflow::results {
namespace {

using nlohmann::json;

Status statusFor(const Result<http::ClientResponse>& response, const std::string& who) {
  if (!response) return response.error();
  const int s = response->status;
  if (s >= 200 && s < 300) return {};
  const std::string msg = who + " answered HTTP " + std::to_string(s);
  if (s == 429) {
    std::int64_t retry_after = -1;
    const std::string v = response->header("retry-after");
    if (!v.empty() && v.find_first_not_of("0123456789") == std::string::npos) retry_after = std::stoll(v) * 1000;
    return Error::rateLimited(msg, retry_after);
  }
  if (s == 408 || s >= 500) return Error::unavailable(msg);
  return Error::invalidArgument(msg + " (check the sink's settings and credentials)");
}

// A failed look-up for an earlier write must not drop the write (a 403 on a read the writer
// lacks, a 400 from a parameter a site refuses): it holds the update, naming why, until an
// operator grants the read or the system answers.
Error lookupFailed(const std::string& sink, const Error& error) {
  return Error::unavailable(sink + ": cannot read back whether an earlier attempt wrote this update (" + error.message +
                            "); holding it rather than writing a possible duplicate");
}

enum class Lookup { kFound, kAbsent, kTooMany };

std::string trimSlash(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}

class WebhookSink final : public ResultSink {
 public:
  WebhookSink(WebhookOptions o, std::shared_ptr<http::HttpClient> http) : o_(std::move(o)), http_(std::move(http)) {}
  const std::string& name() const override { return o_.name; }
  // A receiver dedupes on the Idempotency-Key: there is nothing of ours to read back.
  Status write(const TicketUpdate& update, bool /*may_have_written*/) override {
    http::ClientRequest req;
    req.url = o_.url;
    req.body = toJson(update);
    req.headers = {{"Idempotency-Key", idempotencyKey(update)},
                   {"X-Ticketflow-Event", "ticket.update"},
                   {"X-Ticketflow-Signature", "sha256=" + hmacSha256Hex(o_.secret, req.body)}};
    for (const auto& [k, v] : o_.headers) req.headers.emplace_back(k, v);
    return statusFor(http_->send(req), o_.name);
  }

 private:
  WebhookOptions o_;
  std::shared_ptr<http::HttpClient> http_;
};

class JiraSink final : public ResultSink {
 public:
  JiraSink(JiraOptions o, std::shared_ptr<http::HttpClient> http) : o_(std::move(o)), http_(std::move(http)) {}
  const std::string& name() const override { return o_.name; }
  Status write(const TicketUpdate& update, bool may_have_written) override {
    if (!update.source || update.source->ref.empty())
      return Error::invalidArgument("ticket " + update.ticket_id + " has no source.ref (the Jira issue key)");
    const std::string issue = trimSlash(o_.base_url) + "/rest/api/3/issue/" + percentEncode(update.source->ref);
    const std::string auth = "Basic " + base64Encode(o_.email + ":" + o_.api_token);
    bool commented = false;
    if (may_have_written) {
      auto found = hasComment(issue, auth, update);
      if (!found) return lookupFailed(o_.name, found.error());
      if (*found == Lookup::kTooMany)  // an operator's call: dead-lettered with the reason
        return Error::invalidArgument(o_.name + ": more than " + std::to_string(kPageSize * kMaxPages) +
                                      " comments to look through for ours; not adding one that may be a second");
      commented = *found == Lookup::kFound;
    }
    if (!commented) {
      // A comment in Atlassian Document Format: one paragraph per line of the note.
      json content = json::array();
      std::istringstream lines(updateNote(update) + "\n" + markerLine(update));
      for (std::string line; std::getline(lines, line);) {
        if (line.empty()) continue;
        content.push_back({{"type", "paragraph"}, {"content", json::array({{{"type", "text"}, {"text", line}}})}});
      }
      http::ClientRequest comment;
      comment.url = issue + "/comment";
      comment.headers = {{"Authorization", auth}, {"Accept", "application/json"}};
      comment.body = json{{"body", {{"type", "doc"}, {"version", 1}, {"content", content}}},
                          {"properties", json::array({{{"key", kMarkerProperty}, {"value", writeMarker(update)}}})}}
                         .dump();
      if (auto st = statusFor(http_->send(comment), o_.name); !st) return st;
    }
    // Adding labels an issue already has changes nothing: this is safe to repeat.
    auto label = [&](const std::string& s) {
      std::string out = o_.label_prefix;
      for (char c : s) out += (std::isalnum(static_cast<unsigned char>(c)) ? static_cast<char>(std::tolower(c)) : '-');
      return out;
    };
    json labels = json::array(
        {{{"add", label(update.category)}}, {{"add", label(std::string(difficultyName(update.difficulty)))}}});
    if (update.needs_human) labels.push_back({{"add", o_.label_prefix + "needs-human"}});
    http::ClientRequest edit;
    edit.method = "PUT";
    edit.url = issue;
    edit.headers = {{"Authorization", auth}, {"Accept", "application/json"}};
    edit.body = json{{"update", {{"labels", labels}}}}.dump();
    return statusFor(http_->send(edit), o_.name);
  }

 private:
  static constexpr const char* kMarkerProperty = "ticketflow.idempotency";
  static constexpr int kPageSize = 100;  // Jira Cloud's largest page of comments
  static constexpr int kMaxPages = 56;   // ~5,000 comments: past that, an issue is not a ticket
  static constexpr int kPageOverlap = 10;

  // Whether the issue has a comment of ours for this update: its property, or (should a site
  // not return properties on the list) its marker line in the text. Newest first: ours is recent.
  Result<Lookup> hasComment(const std::string& issue, const std::string& auth, const TicketUpdate& update) {
    const std::string marker = writeMarker(update);
    const std::string line = markerLine(update);
    for (int page = 0, start = 0; page < kMaxPages; ++page) {
      http::ClientRequest list;
      list.method = "GET";
      list.url = issue + "/comment?startAt=" + std::to_string(start) + "&maxResults=" + std::to_string(kPageSize) +
                 "&orderBy=-created&expand=properties";
      list.headers = {{"Authorization", auth}, {"Accept", "application/json"}};
      auto response = http_->send(list);
      if (auto st = statusFor(response, o_.name); !st) return st.error();
      const json body = json::parse(response->body, nullptr, false);
      if (!body.is_object() || !body.contains("comments") || !body["comments"].is_array())
        return Error::unavailable(o_.name + ": the comment list is not Jira's JSON");
      const auto& comments = body["comments"];
      for (const auto& c : comments) {
        if (!c.is_object()) continue;
        if (c.contains("properties") && c["properties"].is_array())
          for (const auto& p : c["properties"])
            if (p.is_object() && p.value("key", "") == kMarkerProperty && p.contains("value") && p["value"] == marker)
              return Lookup::kFound;
        if (c.contains("body") && c["body"].dump().find(line) != std::string::npos) return Lookup::kFound;
      }
      // The next page overlaps this one: comments deleted meanwhile move older ones up, and up to
      // kPageOverlap of them cannot carry ours onto a page already read.
      const int read = static_cast<int>(comments.size());
      const auto total = body.find("total");
      if (read == 0 || total == body.end() || !total->is_number_integer() || start + read >= total->get<int>())
        return Lookup::kAbsent;
      start += read > kPageOverlap ? read - kPageOverlap : read;
    }
    return Lookup::kTooMany;
  }

  JiraOptions o_;
  std::shared_ptr<http::HttpClient> http_;
};

class ServiceNowSink final : public ResultSink {
 public:
  ServiceNowSink(ServiceNowOptions o, std::shared_ptr<http::HttpClient> http)
      : o_(std::move(o)), http_(std::move(http)) {}
  const std::string& name() const override { return o_.name; }
  Status write(const TicketUpdate& update, bool may_have_written) override {
    if (!update.source || update.source->ref.empty())
      return Error::invalidArgument("ticket " + update.ticket_id + " has no source.ref (the incident sys_id)");
    json body = {{"work_notes", updateNote(update) + "\n" + markerLine(update)}, {"category", update.category}};
    if (auto it = o_.assignment_groups.find(update.category); it != o_.assignment_groups.end())
      body["assignment_group"] = it->second;
    if (may_have_written) {
      // The note and the fields went in one PATCH: if the note is there, so are the fields (and
      // any that differ now were changed by an agent since, which must stand).
      auto noted = hasWorkNote(update.source->ref, markerLine(update));
      if (!noted) return lookupFailed(o_.name, noted.error());
      if (*noted) return {};
    }
    http::ClientRequest req;
    req.method = "PATCH";
    req.url = incidentUrl(update.source->ref);
    req.headers = headers();
    req.headers.emplace_back("X-Ticketflow-Idempotency-Key", idempotencyKey(update));
    req.body = body.dump();
    return statusFor(http_->send(req), o_.name);
  }

 private:
  std::string incidentUrl(const std::string& sys_id) const {
    return trimSlash(o_.instance_url) + "/api/now/table/incident/" + percentEncode(sys_id);
  }
  std::vector<std::pair<std::string, std::string>> headers() const {
    return {{"Authorization", "Basic " + base64Encode(o_.username + ":" + o_.password)},
            {"Accept", "application/json"}};
  }
  Result<json> get(const std::string& url) {
    http::ClientRequest req;
    req.method = "GET";
    req.url = url;
    req.headers = headers();
    auto response = http_->send(req);
    if (auto st = statusFor(response, o_.name); !st) return st.error();
    json body = json::parse(response->body, nullptr, false);
    if (!body.is_object() || !body.contains("result"))
      return Error::unavailable(o_.name + ": the answer is not the Table API's JSON");
    return body["result"];
  }
  // Whether the incident's work notes hold one with `line`: read through the incident itself
  // (the journal's display value), which the incident's ACL covers, not sys_journal_field's.
  Result<bool> hasWorkNote(const std::string& sys_id, const std::string& line) {
    auto found = get(incidentUrl(sys_id) + "?sysparm_fields=work_notes&sysparm_display_value=true");
    if (!found) return found.error();
    if (!found->is_object() || !found->contains("work_notes") || !(*found)["work_notes"].is_string())
      return Error::unavailable(o_.name + ": the incident came back without its work notes (read access?)");
    return (*found)["work_notes"].get<std::string>().find(line) != std::string::npos;
  }

  ServiceNowOptions o_;
  std::shared_ptr<http::HttpClient> http_;
};

}  // namespace

std::string idempotencyKey(const TicketUpdate& update) {
  return update.ticket_id + ":" + std::to_string(update.revision);
}

std::string writeMarker(const TicketUpdate& update) {
  return "ticketflow:" + update.tenant + ":" + update.ticket_id + ":" + std::to_string(update.revision);
}

std::string markerLine(const TicketUpdate& update) {
  // Appended, not "[" + ...: GCC 12 at -O3 warns falsely (-Wrestrict) on a literal + temporary.
  std::string line = "[";
  line += writeMarker(update);
  line += ']';
  return line;
}

std::string updateNote(const TicketUpdate& u) {
  std::ostringstream o;
  o << u.reply << "\n";
  if (!u.resolution_steps.empty()) {
    o << "Steps:\n";
    for (std::size_t i = 0; i < u.resolution_steps.size(); ++i) o << (i + 1) << ". " << u.resolution_steps[i] << "\n";
  }
  o << "Triage: " << u.category << ", " << difficultyName(u.difficulty) << ", tier " << u.tier;
  if (!u.model.empty()) o << " (" << u.model << ")";
  o << ", confidence " << static_cast<int>(u.confidence * 100 + 0.5) << "%.";
  if (u.needs_human)
    o << "\nNeeds a human: " << (u.needs_human_reason.empty() ? "see the ticket" : u.needs_human_reason);
  if (u.degraded) o << "\nBest effort: " << u.degraded_reason;
  if (u.ticket_chars_cut > 0)
    o << "\nThe model saw the start and end of this ticket; " << u.ticket_chars_cut
      << " characters in between were left out.";
  if (u.simulated) o << "\n[simulated answer]";
  return o.str();
}

std::unique_ptr<ResultSink> makeWebhookSink(WebhookOptions options, std::shared_ptr<http::HttpClient> http) {
  return std::make_unique<WebhookSink>(std::move(options), std::move(http));
}
std::unique_ptr<ResultSink> makeJiraSink(JiraOptions options, std::shared_ptr<http::HttpClient> http) {
  return std::make_unique<JiraSink>(std::move(options), std::move(http));
}
std::unique_ptr<ResultSink> makeServiceNowSink(ServiceNowOptions options, std::shared_ptr<http::HttpClient> http) {
  return std::make_unique<ServiceNowSink>(std::move(options), std::move(http));
}

}  // namespace ticketflow::results
