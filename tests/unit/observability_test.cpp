#include <cmath>
#include <sstream>

#include <gtest/gtest.h>

#include "fixtures/prometheus_text.hpp"
#include "ticketflow/observability/log.hpp"
#include "ticketflow/observability/metrics.hpp"

namespace ticketflow::observability {
namespace {

TEST(Metrics, RenderFollowsTheTextFormat) {
  MetricsRegistry r;
  auto& consumed = r.counter("ticketflow_tickets_consumed_total", "Tickets consumed.", {"role", "tier"});
  auto& in_flight = r.gauge("ticketflow_in_flight", "Messages in flight.", {"role"});
  auto& latency = r.histogram("ticketflow_model_call_seconds", "Model call latency.", {"model", "outcome"},
                              MetricsRegistry::latencyBuckets());
  consumed.with({"tier", "fast"}).inc();
  consumed.with({"tier", "fast"}).inc(2);
  consumed.with({"intake", "weird \"quoted\"\nvalue\\"}).inc();
  in_flight.with({"tier"}).set(17);
  for (double v : {0.004, 0.2, 0.2, 3.0, 100.0}) latency.with({"gpt-5.5", "ok"}).observe(v);
  r.counter("ticketflow_unlabelled_total", "No labels.").with({}).inc(5);

  const auto parsed = testing::parsePrometheusText(r.render());
  ASSERT_EQ(parsed.error, "") << r.render();
  EXPECT_EQ(parsed.types.at("ticketflow_model_call_seconds"), "histogram");
  EXPECT_EQ(parsed.value("ticketflow_tickets_consumed_total", {{"role", "tier"}, {"tier", "fast"}}), 3);
  EXPECT_EQ(
      parsed.value("ticketflow_tickets_consumed_total", {{"role", "intake"}, {"tier", "weird \"quoted\"\nvalue\\"}}),
      1);
  EXPECT_EQ(parsed.value("ticketflow_in_flight", {{"role", "tier"}}), 17);
  EXPECT_EQ(parsed.value("ticketflow_model_call_seconds_count", {{"model", "gpt-5.5"}, {"outcome", "ok"}}), 5);
  EXPECT_EQ(
      parsed.value("ticketflow_model_call_seconds_bucket", {{"model", "gpt-5.5"}, {"outcome", "ok"}, {"le", "0.25"}}),
      3);
  EXPECT_NEAR(parsed.value("ticketflow_model_call_seconds_sum", {{"model", "gpt-5.5"}, {"outcome", "ok"}}), 103.404,
              1e-9);
  EXPECT_EQ(parsed.value("ticketflow_unlabelled_total", {}), 5);
}

TEST(Metrics, TheParserCatchesBrokenText) {
  EXPECT_NE(testing::parsePrometheusText("# TYPE a counter\na -1\n").error, "");
  EXPECT_NE(testing::parsePrometheusText("a{b=\"1\"} 1\na{b=\"1\"} 2\n").error, "");
  EXPECT_NE(testing::parsePrometheusText("a{1b=\"x\"} 1\n").error, "");
  EXPECT_NE(testing::parsePrometheusText(
                "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\nh_sum 1\n")
                .error,
            "");
  EXPECT_NE(testing::parsePrometheusText("a 1\n# TYPE a gauge\n").error, "");
}

TEST(Metrics, RejectsBadNamesAndDuplicates) {
  MetricsRegistry r;
  EXPECT_THROW(r.counter("bad-name", "x"), std::invalid_argument);
  EXPECT_THROW(r.counter("ok_total", "x", {"le"}), std::invalid_argument);
  r.counter("ok_total", "x");
  EXPECT_THROW(r.gauge("ok_total", "x"), std::invalid_argument);
  EXPECT_THROW(r.counter("c_total", "x", {"a"}).with({"1", "2"}), std::invalid_argument);
}

TEST(Logs, OneJsonObjectPerLineWithSecretsRedacted) {
  std::ostringstream sink;
  ManualClock clock;
  Logger log("tier", LogLevel::kInfo, sink, clock);
  log.debug("hidden");
  log.info("ticket_done", {{"ticket_id", "INC-1"},
                           {"trace_id", "abc"},
                           {"body", "my password is hunter2"},
                           {"api_key", "sk-live-123"},
                           {"nested", {{"Authorization", "Bearer x"}}}});
  const std::string out = sink.str();
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1);
  const auto line = nlohmann::json::parse(out);
  EXPECT_EQ(line["level"], "info");
  EXPECT_EQ(line["role"], "tier");
  EXPECT_EQ(line["event"], "ticket_done");
  EXPECT_EQ(line["ticket_id"], "INC-1");
  EXPECT_TRUE(line.contains("time"));
  EXPECT_EQ(out.find("hunter2"), std::string::npos);
  EXPECT_EQ(out.find("sk-live-123"), std::string::npos);
  EXPECT_EQ(out.find("Bearer x"), std::string::npos);
  // A field cannot replace the line's own keys, and a value that is not UTF-8 still gives a line.
  log.info("stage", {{"event", "spoofed"}, {"detail", std::string("bad \xff byte")}});
  const std::string second = sink.str().substr(out.size());
  EXPECT_EQ(nlohmann::json::parse(second)["event"], "stage");
  EXPECT_EQ(second.find("spoofed"), std::string::npos);
  EXPECT_EQ(parseLogLevel("warn"), LogLevel::kWarn);
  EXPECT_FALSE(parseLogLevel("loud").has_value());
}

}  // namespace
}  // namespace ticketflow::observability
