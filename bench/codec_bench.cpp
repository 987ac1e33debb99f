// What each hop of the pipeline spends on its messages: parsing (with schema validation) and
// serialising the routed ticket, the result and the update, normalising a model's answer, and
// one structured log line. Messages are the shapes `bench pipeline` sends (a sample ticket, eight
// category probabilities, a three-step answer).
#include <sstream>

#include <benchmark/benchmark.h>

#include "ticketflow/core/embedded.hpp"
#include "ticketflow/domain/messages.hpp"
#include "ticketflow/observability/log.hpp"
#include "ticketflow/provider/answer_normaliser.hpp"
#include "ticketflow/schema/validator.hpp"

namespace ticketflow {
namespace {

Ticket sampleTicket() {
  std::istringstream lines{std::string(*embeddedFile("config/samples/tickets.jsonl"))};
  std::string line;
  std::getline(lines, line);
  auto t = parseTicket(line);
  if (!t) throw std::runtime_error("sample ticket: " + t.error().message);
  return *t;
}

Classification sampleClassification() {
  Classification c;
  c.category = "Hardware";
  c.confidence = 0.9941335035736882;
  c.difficulty = Difficulty::kEasy;
  c.difficulty_score = 0.27817718996697827;
  const char* labels[] = {"Access",           "Administrative rights", "HR Support", "Hardware",
                          "Internal Project", "Miscellaneous",         "Purchase",   "Storage"};
  double p = 0.0012126624722715422;
  for (const char* l : labels) c.probabilities[l] = (p *= 0.731);
  c.probabilities["Hardware"] = c.confidence;
  return c;
}

RoutedTicket sampleRouted() {
  RoutedTicket r;
  r.ticket = sampleTicket();
  r.trace_id = "3c1eac6667eadfee4215077bacd7d539";
  r.received_at = "2026-12-02T16:41:06.006Z";
  r.classification = sampleClassification();
  r.tier = "fast";
  r.rule = "difficulty";
  return r;
}

Answer sampleAnswer() {
  Answer a;
  a.summary = "Expired or forgotten password blocks sign-in.";
  a.category_check = "Access";
  a.reply = "Your password can be reset through the self-service portal from any phone or a colleague's computer.";
  a.resolution_steps = {"Open the self-service password portal and choose \"Forgot password\".",
                        "Confirm with your registered phone or e-mail.",
                        "Sign in on the laptop while connected to the office network or VPN to sync the new password."};
  a.confidence = 0.8682;
  return a;
}

TicketResult sampleResult() {
  const RoutedTicket routed = sampleRouted();
  TicketResult r;
  r.ticket_id = routed.ticket.id;
  r.tenant = routed.ticket.tenant;
  r.source = routed.ticket.source;
  r.trace_id = routed.trace_id;
  r.classification = routed.classification;
  r.tier = "fast";
  r.model = "gemini-2.5-flash-lite";
  r.provider = "google";
  r.answer = sampleAnswer();
  r.cost_micro_usd = 95;
  r.usage = {423, 130};
  r.latency_ms = 986;
  r.attempts = 1;
  r.simulated = true;
  r.completed_at = "2026-12-02T16:41:36.417Z";
  return r;
}

void BM_RoutedTicketSerialise(benchmark::State& state) {
  const RoutedTicket routed = sampleRouted();
  for (auto _ : state) benchmark::DoNotOptimize(toJson(routed));
}
BENCHMARK(BM_RoutedTicketSerialise);

void BM_RoutedTicketParse(benchmark::State& state) {
  const std::string bytes = toJson(sampleRouted());
  for (auto _ : state) benchmark::DoNotOptimize(parseRoutedTicket(bytes));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes.size()));
}
BENCHMARK(BM_RoutedTicketParse);

void BM_TicketParse(benchmark::State& state) {
  const std::string bytes = toJson(sampleTicket());
  for (auto _ : state) benchmark::DoNotOptimize(parseTicket(bytes));
}
BENCHMARK(BM_TicketParse);

void BM_AnswerNormalise(benchmark::State& state) {
  const std::string content = toJson(sampleAnswer());
  for (auto _ : state) benchmark::DoNotOptimize(provider::normaliseAnswer(content));
}
BENCHMARK(BM_AnswerNormalise);

void BM_ResultSerialise(benchmark::State& state) {
  const TicketResult result = sampleResult();
  for (auto _ : state) benchmark::DoNotOptimize(toJson(result));
}
BENCHMARK(BM_ResultSerialise);

void BM_ResultParse(benchmark::State& state) {
  const std::string bytes = toJson(sampleResult());
  for (auto _ : state) benchmark::DoNotOptimize(parseTicketResult(bytes));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes.size()));
}
BENCHMARK(BM_ResultParse);

void BM_UpdateSerialise(benchmark::State& state) {
  const TicketUpdate update = TicketUpdate::fromResult(sampleResult(), "2026-12-02T16:41:36.500Z");
  for (auto _ : state) benchmark::DoNotOptimize(toJson(update));
}
BENCHMARK(BM_UpdateSerialise);

void BM_LogLine(benchmark::State& state) {
  std::ostringstream sink;
  observability::Logger logger("results", observability::LogLevel::kInfo, sink);
  const TicketResult r = sampleResult();
  for (auto _ : state) {
    logger.info("ticket_updated", {{"ticket_id", r.ticket_id},
                                   {"trace_id", r.trace_id},
                                   {"tenant", r.tenant},
                                   {"revision", r.revision},
                                   {"category", r.classification.category},
                                   {"tier", r.tier},
                                   {"model", r.model},
                                   {"cache", "miss"},
                                   {"cost_micro_usd", r.cost_micro_usd},
                                   {"latency_ms", r.latency_ms},
                                   {"needs_human", false},
                                   {"degraded", false},
                                   {"sinks_written", 1}});
    if (sink.tellp() > (1 << 20)) sink.str("");
  }
}
BENCHMARK(BM_LogLine);

}  // namespace
}  // namespace ticketflow

BENCHMARK_MAIN();
