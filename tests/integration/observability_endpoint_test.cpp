#include <atomic>

#include <gtest/gtest.h>

#include "fixtures/environment.hpp"
#include "fixtures/prometheus_text.hpp"
#include "ticketflow/observability/endpoint.hpp"

namespace ticketflow::observability {
namespace {

using testing::runCommand;

TEST(ObservabilityEndpoint, ServesMetricsHealthAndReadiness) {
  MetricsRegistry metrics;
  metrics.counter("ticketflow_tickets_consumed_total", "Tickets consumed.", {"role"}).with({"intake"}).inc(42);
  std::atomic<bool> ready{false};
  ObservabilityEndpoint endpoint(
      0, metrics,
      [&] {
        Readiness r;
        r.ready = ready.load();
        if (!r.ready) r.reasons = {"no partitions assigned"};
        return r;
      },
      "127.0.0.1");
  const std::string base = "http://127.0.0.1:" + std::to_string(endpoint.port());

  auto scraped = runCommand("curl -s -f " + base + "/metrics");
  ASSERT_EQ(scraped.exit_code, 0) << scraped.output;
  const auto parsed = testing::parsePrometheusText(scraped.output);
  EXPECT_EQ(parsed.error, "");
  EXPECT_EQ(parsed.value("ticketflow_tickets_consumed_total", {{"role", "intake"}}), 42);

  EXPECT_EQ(runCommand("curl -s -o /dev/null -w %{http_code} " + base + "/healthz").output, "200");
  auto not_ready = runCommand("curl -s -w \" %{http_code}\" " + base + "/readyz");
  EXPECT_NE(not_ready.output.find("no partitions assigned"), std::string::npos);
  EXPECT_NE(not_ready.output.find(" 503"), std::string::npos) << not_ready.output;
  ready = true;
  EXPECT_EQ(runCommand("curl -s -o /dev/null -w %{http_code} " + base + "/readyz").output, "200");
}

}  // namespace
}  // namespace ticketflow::observability
