// The triage report (workers/triage/report.hpp, totals.hpp): known outcomes in, the figures and
// rows of the text summary and the HTML report out, ticket-provided text escaped, empty runs.
#include <functional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "triage/report.hpp"
#include "triage/totals.hpp"

namespace ticketflow::triage {
namespace {

TicketOutcome outcome(std::string id, std::string category, Difficulty difficulty, std::string tier, MicroUsd cost,
                      MicroUsd frontier) {
  TicketOutcome o;
  o.ticket_id = std::move(id);
  o.tenant = "acme";
  o.subject = "subject of " + o.ticket_id;
  o.category = std::move(category);
  o.difficulty = difficulty;
  o.tier = std::move(tier);
  o.cost_micro_usd = cost;
  o.frontier_micro_usd = frontier;
  return o;
}

TriageReport emptyRun(bool dry_run) {
  TriageReport r;
  r.source = "empty.jsonl";
  r.dry_run = dry_run;
  r.tiers = {"small", "medium", "frontier"};
  r.frontier_tier = "frontier";
  return r;
}

// A live run of four tickets: two easy network tickets on small (the second an exact cache hit on
// the first), a hard access ticket routed to medium that moved up to frontier and needs a human,
// and a dead letter. Spend $0.0090 against $0.0330 all on frontier.
TriageReport sampleLiveRun() {
  TriageReport r = emptyRun(false);
  r.source = "tickets.jsonl";
  r.seconds = 12.34;
  TicketOutcome a = outcome("T-1", "network", Difficulty::kEasy, "small", 1'000, 10'000);
  a.subject = "VPN drops <every> hour & more";
  a.label = "network";
  a.answer_category = "network";
  a.latency_ms = 100;
  TicketOutcome b = outcome("T-2", "network", Difficulty::kEasy, "small", 0, 10'000);
  b.cache = CacheStatus::kExact;
  b.cache_source = "T-1";
  b.latency_ms = 20;
  TicketOutcome c = outcome("T-3", "access", Difficulty::kHard, "frontier", 8'000, 8'000);
  c.routed_tier = "medium";
  c.moves = "low_confidence";
  c.label = "hardware";  // the classifier said access; the answering model agreed with the label
  c.answer_category = "hardware";
  c.needs_human = true;
  c.needs_human_reason = "account locked <admin>";
  c.latency_ms = 900;
  TicketOutcome d = outcome("T-4", "", Difficulty::kMedium, "", 0, 5'000);
  d.dead_lettered = true;
  d.error = "intake: bad \"json\"";
  r.outcomes = {a, b, c, d};
  return r;
}

TEST(TriageTotals, SumsCountsSpendAndCacheFromOutcomes) {
  const TriageTotals t = totalsOf(sampleLiveRun());
  EXPECT_EQ(t.tickets, 4u);
  EXPECT_EQ(t.dead_lettered, 1u);
  EXPECT_EQ(t.by_tier.at("small"), 2u);
  EXPECT_EQ(t.by_tier.at("frontier"), 1u);
  EXPECT_EQ(t.by_tier.count(""), 0u) << "a dead letter has no tier";
  EXPECT_EQ(t.cost, 9'000);
  EXPECT_EQ(t.frontier_cost, 33'000) << "dead letters count in the all-frontier baseline";
  EXPECT_EQ(t.cache_exact, 1u);
  EXPECT_EQ(t.cacheHits(), 1u);
  EXPECT_EQ(t.saved_by_cache, 1'000) << "the hit saved what its source cost";
  EXPECT_EQ(t.by_category_difficulty.at("network").at("easy"), 2u);
  EXPECT_EQ(t.by_category_difficulty.at("access").at("hard"), 1u);
  EXPECT_EQ(t.latency_p50_ms.value_or(-1), 100);
  EXPECT_EQ(t.latency_p95_ms.value_or(-1), 900);
  ASSERT_EQ(t.repeated.size(), 1u);
  EXPECT_EQ(t.repeated[0].tickets, 2u) << "the source ticket and its hit";
  EXPECT_EQ(t.repeated[0].subject, "VPN drops <every> hour & more") << "the source's subject, not the hit's";
  EXPECT_EQ(t.classifier_vs_label.judged, 2u);
  EXPECT_EQ(t.classifier_vs_label.agreed, 1u);
  EXPECT_EQ(t.flow.at({"medium", "frontier"}).reasons.at("low_confidence"), 1u);
  EXPECT_EQ(t.flow.at({"small", "cache"}).reasons.at("exact"), 1u);
}

TEST(TriageTotals, EmptyRunHasNoLatencyAndSavesNothing) {
  const TriageTotals t = totalsOf(emptyRun(false));
  EXPECT_EQ(t.tickets, 0u);
  EXPECT_FALSE(t.latency_p50_ms.has_value());
  EXPECT_TRUE(t.repeated.empty());
  EXPECT_EQ(t.savingShare(), 0.0) << "no division by a zero baseline";
}

// One case of the table: a run, what its output must contain and what it must not.
struct ReportCase {
  std::string name;
  std::function<TriageReport()> run;
  std::vector<std::string> present;
  std::vector<std::string> absent;
};

// Failures name the case, not its bytes.
void PrintTo(const ReportCase& c, std::ostream* os) {
  *os << c.name;
}

std::string caseName(const ::testing::TestParamInfo<ReportCase>& info) {
  return info.param.name;
}

void expectPresentAndAbsent(const std::string& out, const ReportCase& c) {
  for (const auto& s : c.present) EXPECT_NE(out.find(s), std::string::npos) << "missing: " << s << "\nin:\n" << out;
  for (const auto& s : c.absent) EXPECT_EQ(out.find(s), std::string::npos) << "unexpected: " << s << "\nin:\n" << out;
}

class TriageTextSummary : public ::testing::TestWithParam<ReportCase> {};

TEST_P(TriageTextSummary, ShowsTheRunsFigures) {
  const TriageReport r = GetParam().run();
  expectPresentAndAbsent(textSummary(r, totalsOf(r)), GetParam());
}

INSTANTIATE_TEST_SUITE_P(
    Cases, TriageTextSummary,
    ::testing::Values(
        ReportCase{"LiveRun",
                   sampleLiveRun,
                   {"4 tickets from tickets.jsonl in 12.3 s\n", "  category      easy  medium    hard   total\n",
                    "  network          2       0       0       2\n", "  access           0       0       1       1\n",
                    "  tiers:  small 2 (50.0%)  medium 0 (0.0%)  frontier 1 (25.0%)\n",
                    "  cache: 1 hits (25.0%): 1 exact, 0 semantic, 0 coalesced",
                    "    medium -> frontier: 1 (low_confidence 1)\n    small -> cache: 1 (exact 1)\n"
                    "    small -> small: 1\n",
                    "  against the file's labels (2 labelled): classifier 50.0%; answers 100.0% of 2 "
                    "(small 100.0% of 1  frontier 100.0% of 1)\n",
                    "  spend: $0.0090 vs $0.0330 with every ticket on frontier: 72.7% saved\n",
                    "    by tier:  small $0.0010  medium $0.0000  frontier $0.0080\n",
                    "  latency, intake to update: p50 0.10 s, p95 0.90 s\n",
                    "  needs a human: 1, degraded (best effort): 0, dead-lettered: 1\n",
                    "  most repeated issues:\n    2 x acme/T-1 (network)\n"},
                   {"dry run", "skipped", "no outcome yet", "calibrated", "shadow"}},
        ReportCase{"EmptyLiveRun",
                   [] { return emptyRun(false); },
                   {"0 tickets from empty.jsonl in 0.0 s\n", "  category      easy  medium    hard   total\n",
                    "  tiers:  small 0 (0.0%)  medium 0 (0.0%)  frontier 0 (0.0%)\n",
                    "  cache: 0 hits (0.0%): 0 exact, 0 semantic, 0 coalesced",
                    "  spend: $0.0000 vs $0.0000 with every ticket on frontier: 0.0% saved\n",
                    "  needs a human: 0, degraded (best effort): 0, dead-lettered: 0\n"},
                   {"latency", "most repeated issues", "routed ->", "against the file's labels", "nan"}},
        ReportCase{
            "DryRunWithoutRedis",
            [] {
              TriageReport r = emptyRun(true);
              r.outcomes = {outcome("D-1", "email", Difficulty::kMedium, "medium", 2'500, 10'000)};
              return r;
            },
            {"dry run (no model calls): 1 tickets from empty.jsonl", "  email            0       1       0       1\n",
             "0 exact, 0 semantic (not projected: no redis-server)\n",
             "  projected spend: $0.0025 vs $0.0100 with every ticket on frontier: 75.0% saved\n"},
            {"coalesced", "needs a human", "routed ->"}},
        ReportCase{"CalibratedDryRun",
                   [] {
                     TriageReport r = emptyRun(true);
                     r.cache_projected = true;
                     r.projected_range = std::make_pair(MicroUsd{1'081'700}, MicroUsd{1'488'100});
                     r.calibration_outcomes = 283;
                     return r;
                   },
                   {"    calibrated by 283 live outcomes: 95% range $1.0817 to $1.4881"},
                   {"not projected"}},
        ReportCase{
            "SkippedAndMissingRows",
            [] {
              TriageReport r = emptyRun(false);
              r.skipped = {"f: line 2: no body", "f: line 3: no body", "f: line 4: no id", "f: line 9: no id"};
              r.missing = 2;
              return r;
            },
            {"  skipped 4 rows:\n    f: line 2: no body\n    f: line 3: no body\n    f: line 4: no id\n    ...\n",
             "  no outcome yet for 2 submitted tickets (run again with the same --state to collect them)\n"},
            {"line 9"}}),
    caseName);

class TriageHtmlReport : public ::testing::TestWithParam<ReportCase> {};

TEST_P(TriageHtmlReport, ShowsTheRunsFiguresAndEscapesTicketText) {
  const TriageReport r = GetParam().run();
  const std::string html = htmlReport(r, totalsOf(r));
  expectPresentAndAbsent(html, GetParam());
  EXPECT_EQ(html.rfind("<!DOCTYPE html>\n", 0), 0u);
  EXPECT_EQ(html.substr(html.size() - 15), "</body></html>\n");
}

INSTANTIATE_TEST_SUITE_P(
    Cases, TriageHtmlReport,
    ::testing::Values(
        ReportCase{
            "LiveRun",
            sampleLiveRun,
            {"<title>ticketflow triage report: tickets.jsonl</title>", "4 tickets in 12.3 s.",
             "<span class=\"kpi\"><b>$0.0090</b>spend</span>",
             "<span class=\"kpi\"><b>$0.0330</b>all on frontier</span>", "<span class=\"kpi\"><b>72.7%</b>saved</span>",
             "<span class=\"kpi\"><b>25.0%</b>cache hits</span>", "<span class=\"kpi\"><b>1</b>need a human</span>",
             "<tr><td>network</td><td class=\"n\">2</td><td class=\"n\">0</td><td class=\"n\">0</td>"
             "<td class=\"n\">2</td></tr>",
             "<tr><td>small</td><td class=\"n\">2</td><td class=\"n\">$0.0010</td></tr>",
             "<tr><td>frontier</td><td class=\"n\">1</td><td class=\"n\">$0.0080</td></tr>",
             "<tr><td>medium</td><td>frontier</td><td class=\"n\">1</td><td>low_confidence 1</td></tr>",
             "<tr><td>classifier</td><td class=\"n\">50.0%</td><td class=\"n\">2</td></tr>",
             "<p>Latency from intake to update: p50 0.10 s, p95 0.90 s.</p>",
             // ticket-provided text, escaped
             "<td>VPN drops &lt;every&gt; hour &amp; more</td>",
             "<tr><td>T-3</td><td>acme</td><td>access</td><td>frontier</td><td>account locked &lt;admin&gt;</td></tr>",
             "<td>dead-lettered: intake: bad &quot;json&quot;</td>", "id=\"chart-categories\"", "id=\"chart-cost\"",
             "<table id=\"repeated\">", "<table id=\"needs-human\">"},
            {"<every>", "<admin>", "\"json\"", "Dry run", "rows skipped"}},
        ReportCase{
            "EmptyLiveRun",
            [] { return emptyRun(false); },
            {"0 tickets in 0.0 s.", "<span class=\"kpi\"><b>0.0%</b>cache hits</span>",
             "<span class=\"kpi\"><b>0</b>need a human</span>", "<p>No ticket was answered from another's answer.</p>",
             "<h2>Tickets that need a human</h2>\n<p>None.</p>", "id=\"chart-categories\"", "id=\"chart-cost\""},
            {"<table id=\"repeated\">", "<table id=\"needs-human\">", "Latency", "Skipped rows", "nan"}},
        ReportCase{"EmptyDryRun",
                   [] { return emptyRun(true); },
                   {"Dry run: classified and priced locally, no model calls. 0 tickets",
                    "<span class=\"kpi\"><b>$0.0000</b>projected spend</span>",
                    "<span class=\"kpi\"><b>n/a</b>need a human</span>", "<h2>Projected cost per tier",
                    "<p>A dry run does not ask models, so it cannot tell.</p>"},
                   {"<p>None.</p>"}},
        ReportCase{"HostileSourceAndSkippedRows",
                   [] {
                     TriageReport r = emptyRun(false);
                     r.source = "a&b<x>.jsonl";
                     r.skipped = {"a&b<x>.jsonl: line 7: 'tenant' is <empty>"};
                     r.missing = 3;
                     return r;
                   },
                   {"<title>ticketflow triage report: a&amp;b&lt;x&gt;.jsonl</title>",
                    "<h1>Triage report: a&amp;b&lt;x&gt;.jsonl</h1>", " 1 rows skipped (listed at the end).",
                    " 3 submitted tickets had no outcome yet.",
                    "<li>a&amp;b&lt;x&gt;.jsonl: line 7: &#39;tenant&#39; is &lt;empty&gt;</li>"},
                   {"<x>", "<empty>"}}),
    caseName);

// Long lists are cut: the HTML lists at most 500 tickets that need a human and 20 repeated issues,
// the text the 5 most repeated.
TEST(TriageReportLists, LongListsAreCut) {
  TriageReport r = emptyRun(false);
  for (int i = 0; i < 600; ++i) {
    TicketOutcome o = outcome("H-" + std::to_string(i), "access", Difficulty::kHard, "frontier", 10, 10);
    o.needs_human = true;
    o.needs_human_reason = "why-" + std::to_string(i);
    r.outcomes.push_back(o);
  }
  for (int source = 0; source < 30; ++source) {
    TicketOutcome hit = outcome("C-" + std::to_string(source), "email", Difficulty::kEasy, "small", 0, 10);
    hit.cache = CacheStatus::kSemantic;
    hit.cache_source = "S-" + std::to_string(source);
    // Sources answered more often sort first: S-0 has 30 hits, S-29 one.
    for (int n = 0; n < 30 - source; ++n) r.outcomes.push_back(hit);
  }
  const TriageTotals t = totalsOf(r);
  const std::string html = htmlReport(r, t);
  auto count = [&](const std::string& s, const std::string& what) {
    std::size_t n = 0;
    for (auto at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count(html, "<td>why-"), 500u);
  EXPECT_NE(html.find("<td>why-499</td>"), std::string::npos);
  EXPECT_EQ(html.find("<td>why-500</td>"), std::string::npos);
  EXPECT_EQ(count(html, "<td>S-"), 20u);
  EXPECT_NE(html.find("<tr><td class=\"n\">31</td><td>acme</td><td>S-0</td>"), std::string::npos)
      << "the largest cluster first, with its source";
  const std::string text = textSummary(r, t);
  EXPECT_EQ(count(text, " x acme/S-"), 5u);
  EXPECT_NE(text.find("    31 x acme/S-0 (email)\n"), std::string::npos);
}

}  // namespace
}  // namespace ticketflow::triage
