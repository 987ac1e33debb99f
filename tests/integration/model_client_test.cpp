// ModelClient over real HTTP against the provider simulator: both protocols, exact usage and
// cost, rate-limit hints, timeouts, keep-alive reuse.
#include "ticketflow/provider/model_client.hpp"

#include <gtest/gtest.h>

#include "fixtures/simulator.hpp"
#include "sim/simulator.hpp"
#include "ticketflow/core/embedded.hpp"
#include "ticketflow/provider/answer_normaliser.hpp"
#include "ticketflow/provider/prompt.hpp"

namespace ticketflow {
namespace {

using namespace std::chrono_literals;

struct Setup {
  ProviderConfig provider;
  ModelConfig model;
};

Setup setupFor(const sim::ProviderSimulator& s, ProviderApi api) {
  Setup x;
  x.provider.name = "sim";
  x.provider.api = api;
  x.provider.base_url = api == ProviderApi::kOpenAi ? s.baseUrl() + "/v1" : s.baseUrl();
  x.model.name = "m";
  x.model.model_id = "test-model";  // no profile of its own: the default profile applies
  x.model.input_micro_usd_per_mtok = 3'000'000;
  x.model.output_micro_usd_per_mtok = 15'000'000;
  return x;
}

provider::ModelRequest request(const std::string& body) {
  Ticket t;
  t.subject = "VPN";
  t.body = body;
  ModelConfig uncut;  // the whole body, however long
  uncut.max_output_tokens = 512;
  uncut.max_ticket_tokens = 10'000'000;
  uncut.context_window = 100'000'000;
  return provider::buildModelRequest(provider::PromptSet::builtin(), t, "Access", uncut);
}

TEST(ModelClient, BothProtocolsRoundTripWithExactCost) {
  sim::ProviderSimulator s(testing::instantSimulatorOptions());
  auto http = std::make_shared<http::HttpClient>(http::HttpClientOptions{});
  for (auto api : {ProviderApi::kOpenAi, ProviderApi::kAnthropic}) {
    const auto x = setupFor(s, api);
    auto client = provider::makeModelClient(x.provider, x.model, http, "sk-sim");
    auto reply = client->complete(request("My VPN drops every hour."));
    ASSERT_TRUE(reply.ok()) << reply.error().message;
    EXPECT_TRUE(reply->simulated);
    EXPECT_GT(reply->usage.input_tokens, 100);  // the system prompt counts
    EXPECT_GT(reply->usage.output_tokens, 10);
    const std::int64_t expected =
        (reply->usage.input_tokens * 3'000'000 + reply->usage.output_tokens * 15'000'000 + 999'999) / 1'000'000;
    EXPECT_EQ(reply->cost_micro_usd, expected);
    auto answer = provider::normaliseAnswer(reply->content);
    ASSERT_TRUE(answer.ok()) << answer.error().message;
    EXPECT_NE(answer->reply.find("simulated"), std::string::npos);
  }
  const auto stats = http->stats();
  EXPECT_EQ(stats.requests, 2);
  EXPECT_EQ(stats.connections_opened, 1);  // keep-alive: the second call reused the connection
}

// The provider's limits and what is left of them reach the rate limiter (it slows down below a
// tenth of a window), in either protocol's header names.
TEST(ModelClient, RateLimitHeadersBecomeHints) {
  auto options = testing::instantSimulatorOptions();
  options.default_profile.rpm = 600;
  options.default_profile.tpm = 90'000;
  sim::ProviderSimulator s(options);
  auto http = std::make_shared<http::HttpClient>(http::HttpClientOptions{});
  for (auto api : {ProviderApi::kOpenAi, ProviderApi::kAnthropic}) {
    const auto x = setupFor(s, api);
    auto reply = provider::makeModelClient(x.provider, x.model, http, "sk-sim")->complete(request("printer offline"));
    ASSERT_TRUE(reply.ok()) << reply.error().message;
    EXPECT_EQ(reply->hints.limit_requests, 600);
    EXPECT_EQ(reply->hints.limit_tokens, 90'000);
    ASSERT_TRUE(reply->hints.remaining_requests.has_value());
    EXPECT_LT(*reply->hints.remaining_requests, 600);
    ASSERT_TRUE(reply->hints.remaining_tokens.has_value());
    EXPECT_LT(*reply->hints.remaining_tokens, 90'000);
  }
}

TEST(ModelClient, RateLimitCarriesRetryAfter) {
  auto options = testing::instantSimulatorOptions();
  options.default_profile.faults.rate_429 = 1;
  options.default_profile.faults.retry_after_s = 1;
  sim::ProviderSimulator s(options);
  const auto x = setupFor(s, ProviderApi::kOpenAi);
  auto client = provider::makeModelClient(x.provider, x.model,
                                          std::make_shared<http::HttpClient>(http::HttpClientOptions{}), "k");
  auto reply = client->complete(request("printer"));
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.error().code, ErrorCode::kRateLimited);
  EXPECT_TRUE(reply.error().retriable);
  EXPECT_EQ(reply.error().retry_after_ms, 1000);
}

TEST(ModelClient, ServerErrorsAreRetriableAuthErrorsAreNot) {
  auto options = testing::instantSimulatorOptions();
  options.default_profile.faults.rate_500 = 1;
  sim::ProviderSimulator s(options);
  const auto x = setupFor(s, ProviderApi::kAnthropic);
  auto http = std::make_shared<http::HttpClient>(http::HttpClientOptions{});
  auto failing = provider::makeModelClient(x.provider, x.model, http, "k")->complete(request("x"));
  ASSERT_FALSE(failing.ok());
  EXPECT_EQ(failing.error().code, ErrorCode::kUnavailable);
  EXPECT_TRUE(failing.error().retriable);

  auto strict = testing::instantSimulatorOptions();
  strict.expected_api_key = "right";
  sim::ProviderSimulator s2(strict);
  const auto y = setupFor(s2, ProviderApi::kOpenAi);
  auto denied = provider::makeModelClient(y.provider, y.model, http, "wrong")->complete(request("x"));
  ASSERT_FALSE(denied.ok());
  EXPECT_FALSE(denied.error().retriable);
  EXPECT_EQ(denied.error().message.find("wrong"), std::string::npos);  // never echo the key
}

TEST(ModelClient, AHangingProviderNeverHoldsACallPastTheTotalTimeout) {
  auto options = testing::instantSimulatorOptions();
  options.default_profile.faults.rate_hang = 1;
  options.default_profile.faults.hang_s = 30;
  sim::ProviderSimulator s(options);
  const auto x = setupFor(s, ProviderApi::kOpenAi);
  http::HttpClientOptions http_options;
  http_options.read_timeout = 800ms;
  http_options.total_timeout = 1000ms;
  auto client = provider::makeModelClient(x.provider, x.model, std::make_shared<http::HttpClient>(http_options), "k");
  const auto started = std::chrono::steady_clock::now();
  auto reply = client->complete(request("x"));
  const auto took = std::chrono::steady_clock::now() - started;
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.error().code, ErrorCode::kTimeout);
  EXPECT_LT(took, 5s);  // bounded by the timeout, not by the 30 s hang
}

}  // namespace
}  // namespace ticketflow

#include "ticketflow/http/server.hpp"

namespace ticketflow {
namespace {

// A peer that answers without end is cut off at the client's bound, not read into memory.
TEST(HttpClientBounds, AResponseOverTheLimitIsRefusedNotBuffered) {
  http::HttpServerOptions server_options;
  http::HttpServer server(server_options, [](const http::HttpRequest& r) {
    http::HttpResponse res;
    res.body = std::string(r.path == "/big" ? 3 << 20 : 1000, 'x');
    return res;
  });
  http::HttpClientOptions options;
  options.max_response_bytes = 1 << 20;
  http::HttpClient client(options);
  const std::string base = "http://127.0.0.1:" + std::to_string(server.port());
  auto small = client.send({"GET", base + "/small", {}, "", "application/json"});
  ASSERT_TRUE(small.ok()) << small.error().message;
  EXPECT_EQ(small->body.size(), 1000u);
  auto big = client.send({"GET", base + "/big", {}, "", "application/json"});
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().code, ErrorCode::kMalformed);
  EXPECT_NE(big.error().message.find("is over 1048576 bytes"), std::string::npos) << big.error().message;
  auto after = client.send({"GET", base + "/small", {}, "", "application/json"});
  ASSERT_TRUE(after.ok()) << "the client goes on after refusing one";
}

}  // namespace
}  // namespace ticketflow
