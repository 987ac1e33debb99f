// Result sinks over real HTTP against a local receiver, and against Jira and ServiceNow fakes
// that keep what was written (tests/fixtures/ticket_systems.hpp).
#include "results/sinks.hpp"

#include <gtest/gtest.h>

#include "fixtures/http_receiver.hpp"
#include "fixtures/ticket_systems.hpp"
#include "ticketflow/core/base64.hpp"
#include "ticketflow/core/crypto.hpp"
#include "ticketflow/schema/validator.hpp"

namespace ticketflow::results {
namespace {

using nlohmann::json;

TicketUpdate sampleUpdate() {
  TicketUpdate u;
  u.ticket_id = "INC-77";
  u.tenant = "acme";
  u.revision = 3;
  u.source = TicketSource{"jira", "HELP-42"};
  u.trace_id = "0123456789abcdef0123456789abcdef";
  u.category = "Access";
  u.difficulty = Difficulty::kEasy;
  u.confidence = 0.91;
  u.tier = "fast";
  u.model = "gemini-2.5-flash-lite";
  u.provider = "google";
  u.summary = "VPN drops";
  u.reply = "Please update the VPN client.";
  u.resolution_steps = {"Update the client", "Reconnect"};
  u.needs_human = true;
  u.needs_human_reason = "identity check";
  u.updated_at = "2026-11-22T10:00:00.000Z";
  return u;
}

auto client() {
  return std::make_shared<http::HttpClient>(http::HttpClientOptions{});
}

TEST(Crypto, HmacSha256MatchesRfc4231) {
  EXPECT_EQ(hmacSha256Hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_EQ(sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(WebhookSink, PostsTheSignedUpdate) {
  testing::HttpReceiver receiver;
  auto sink = makeWebhookSink({"hook", receiver.url() + "/ticketflow", "s3cret", {{"X-Team", "helpdesk"}}}, client());
  ASSERT_TRUE(sink->write(sampleUpdate(), false).ok());
  const auto reqs = receiver.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].method, "POST");
  EXPECT_EQ(reqs[0].path, "/ticketflow");
  EXPECT_EQ(reqs[0].header("x-ticketflow-signature"), "sha256=" + hmacSha256Hex("s3cret", reqs[0].body));
  EXPECT_EQ(reqs[0].header("idempotency-key"), "INC-77:3");
  EXPECT_EQ(reqs[0].header("x-team"), "helpdesk");
  const auto errors =
      schema::SchemaRegistry::builtin().validate("ticket_update.schema.json", json::parse(reqs[0].body));
  EXPECT_TRUE(errors.empty()) << errors[0].describe();
}

TEST(WebhookSink, ClassifiesFailures) {
  testing::HttpReceiver receiver;
  auto sink = makeWebhookSink({"hook", receiver.url(), "k", {}}, client());
  receiver.failNext(1, 503);
  auto unavailable = sink->write(sampleUpdate(), false);
  ASSERT_FALSE(unavailable.ok());
  EXPECT_TRUE(unavailable.error().retriable);
  receiver.failNext(1, 429, 2);
  auto limited = sink->write(sampleUpdate(), false);
  ASSERT_FALSE(limited.ok());
  EXPECT_EQ(limited.error().retry_after_ms, 2000);
  receiver.failNext(1, 400);
  auto rejected = sink->write(sampleUpdate(), false);
  ASSERT_FALSE(rejected.ok());
  EXPECT_FALSE(rejected.error().retriable);
  EXPECT_TRUE(sink->write(sampleUpdate(), false).ok());
}

TEST(JiraSink, CommentsAndLabelsTheSourceIssue) {
  testing::HttpReceiver receiver;
  auto sink = makeJiraSink({"jira", receiver.url() + "/", "bot@acme.example", "tok", "ticketflow-"}, client());
  ASSERT_TRUE(sink->write(sampleUpdate(), false).ok());
  const auto reqs = receiver.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].method, "POST");
  EXPECT_EQ(reqs[0].path, "/rest/api/3/issue/HELP-42/comment");
  EXPECT_EQ(reqs[0].header("authorization"), "Basic " + base64Encode("bot@acme.example:tok"));
  const auto comment = json::parse(reqs[0].body);
  EXPECT_EQ(comment["body"]["type"], "doc");
  EXPECT_NE(comment.dump().find("Please update the VPN client."), std::string::npos);
  EXPECT_EQ(reqs[1].method, "PUT");
  EXPECT_EQ(reqs[1].path, "/rest/api/3/issue/HELP-42");
  const auto labels = json::parse(reqs[1].body)["update"]["labels"];
  EXPECT_EQ(labels,
            json::parse(R"([{"add":"ticketflow-access"},{"add":"ticketflow-easy"},{"add":"ticketflow-needs-human"}])"));
}

TEST(ServiceNowSink, PatchesTheIncident) {
  testing::HttpReceiver receiver;
  auto update = sampleUpdate();
  update.source = TicketSource{"servicenow", "9d385017c611228701d22104cc95c371"};
  auto sink = makeServiceNowSink({"snow", receiver.url(), "bot", "pw", {{"Access", "Identity Team"}}}, client());
  ASSERT_TRUE(sink->write(update, false).ok());
  const auto reqs = receiver.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].method, "PATCH");
  EXPECT_EQ(reqs[0].path, "/api/now/table/incident/9d385017c611228701d22104cc95c371");
  const auto body = json::parse(reqs[0].body);
  EXPECT_EQ(body["category"], "Access");
  EXPECT_EQ(body["assignment_group"], "Identity Team");
  EXPECT_NE(body["work_notes"].get<std::string>().find("Needs a human: identity check"), std::string::npos);
}

TEST(JiraSink, AfterACrashItFindsItsOwnCommentAndAddsNoSecond) {
  testing::FakeJira jira("bot@acme.example", "tok");
  jira.createIssue("HELP-42");
  auto sink = makeJiraSink({"jira", jira.url(), "bot@acme.example", "tok", "ticketflow-"}, client());
  ASSERT_TRUE(sink->write(sampleUpdate(), false).ok());
  // People keep commenting: ours is now far down a long, paged list.
  for (int i = 0; i < 230; ++i) jira.addPersonsComment("HELP-42", "still broken? #" + std::to_string(i));
  ASSERT_TRUE(sink->write(sampleUpdate(), true).ok()) << "the retry after a crash between write and mark";
  int ours = 0;
  for (const auto& c : jira.comments("HELP-42"))
    ours += c.properties.dump().find(writeMarker(sampleUpdate())) != std::string::npos;
  EXPECT_EQ(ours, 1) << "one triage comment per revision";
  EXPECT_EQ(jira.comments("HELP-42").size(), 231u);
  EXPECT_EQ(jira.labels("HELP-42"),
            (std::set<std::string>{"ticketflow-access", "ticketflow-easy", "ticketflow-needs-human"}));
  EXPECT_GE(jira.requests("GET"), 3) << "it read the pages of comments (100 each)";

  auto next = sampleUpdate();
  next.revision = 4;  // a new revision after a crash before its comment: written once
  ASSERT_TRUE(sink->write(next, true).ok());
  ours = 0;
  for (const auto& c : jira.comments("HELP-42"))
    ours += c.properties.dump().find(writeMarker(next)) != std::string::npos;
  EXPECT_EQ(ours, 1);
}

TEST(JiraSink, CommentsDeletedWhileItPagesDoNotHideItsOwn) {
  testing::FakeJira jira("bot@acme.example", "tok");
  jira.createIssue("HELP-42");
  auto sink = makeJiraSink({"jira", jira.url(), "bot@acme.example", "tok", "ticketflow-"}, client());
  ASSERT_TRUE(sink->write(sampleUpdate(), false).ok());
  // Ours is 105th newest; after the first page, people delete 5 newer comments, so it moves up
  // to the 100th: onto the page already read, unless the next page overlaps it.
  for (int i = 0; i < 104; ++i) jira.addPersonsComment("HELP-42", "me too #" + std::to_string(i));
  jira.setDeletesAfterEachList(5);
  ASSERT_TRUE(sink->write(sampleUpdate(), true).ok());
  int ours = 0;
  for (const auto& c : jira.comments("HELP-42"))
    ours += c.properties.dump().find(writeMarker(sampleUpdate())) != std::string::npos;
  EXPECT_EQ(ours, 1) << "one triage comment per revision";
}

TEST(ServiceNowSink, AfterACrashItFindsItsWorkNoteAndLeavesTheIncidentAlone) {
  testing::FakeServiceNow snow("bot", "pw");
  const std::string sys_id = "9d385017c611228701d22104cc95c371";
  snow.createIncident(sys_id);
  auto update = sampleUpdate();
  update.source = TicketSource{"servicenow", sys_id};
  auto sink = makeServiceNowSink({"snow", snow.url(), "bot", "pw", {{"Access", "Identity Team"}}}, client());
  ASSERT_TRUE(sink->write(update, false).ok());
  ASSERT_EQ(snow.workNotes(sys_id).size(), 1u);
  EXPECT_NE(snow.workNotes(sys_id)[0].find(markerLine(update)), std::string::npos);
  EXPECT_EQ(snow.field(sys_id, "assignment_group"), "Identity Team");
  const int patches = snow.requests("PATCH");

  snow.setField(sys_id, "assignment_group", "Network Team");  // an agent reassigns it meanwhile
  ASSERT_TRUE(sink->write(update, true).ok());
  EXPECT_EQ(snow.workNotes(sys_id).size(), 1u) << "one work note per revision";
  EXPECT_EQ(snow.requests("PATCH"), patches) << "the note is there, so its fields went in with it";
  EXPECT_EQ(snow.field(sys_id, "assignment_group"), "Network Team") << "the agent's change stands";

  auto other = update;
  other.revision = 12;  // its marker line must not match revision 1's, nor 1's match it
  ASSERT_TRUE(sink->write(other, true).ok());
  EXPECT_EQ(snow.workNotes(sys_id).size(), 2u);
  auto first = update;
  first.revision = 1;
  ASSERT_TRUE(sink->write(first, true).ok());
  EXPECT_EQ(snow.workNotes(sys_id).size(), 3u) << "[...:1] is not found inside [...:12]";
}

TEST(JiraSink, FindsItsCommentByItsLastLineWhenTheListCarriesNoProperties) {
  testing::FakeJira jira("bot@acme.example", "tok");
  jira.createIssue("HELP-42");
  jira.setReturnsProperties(false);
  auto sink = makeJiraSink({"jira", jira.url(), "bot@acme.example", "tok", "ticketflow-"}, client());
  ASSERT_TRUE(sink->write(sampleUpdate(), false).ok());
  ASSERT_TRUE(sink->write(sampleUpdate(), true).ok());
  EXPECT_EQ(jira.comments("HELP-42").size(), 1u);
}

TEST(TicketSystemSinks, AFailedLookUpHoldsTheUpdateInsteadOfDroppingOrRepeatingIt) {
  testing::FakeJira jira("bot@acme.example", "tok");  // HELP-42 does not exist: every request 404s
  auto sink = makeJiraSink({"jira", jira.url(), "bot@acme.example", "tok", "ticketflow-"}, client());
  auto held = sink->write(sampleUpdate(), true);
  ASSERT_FALSE(held.ok());
  EXPECT_TRUE(held.error().retriable) << "a 4xx on the read-back must not dead-letter the write";
  EXPECT_NE(held.error().message.find("cannot read back"), std::string::npos) << held.error().message;
  EXPECT_EQ(jira.requests("POST"), 0);
}

TEST(TicketSystemSinks, RefuseUpdatesWithoutASourceReference) {
  testing::HttpReceiver receiver;
  auto update = sampleUpdate();
  update.source.reset();
  auto jira = makeJiraSink({"jira", receiver.url(), "a", "b", "tf-"}, client())->write(update, false);
  ASSERT_FALSE(jira.ok());
  EXPECT_FALSE(jira.error().retriable);
  EXPECT_TRUE(receiver.requests().empty());
}

}  // namespace
}  // namespace ticketflow::results
