#pragma once
// A triage run as people read it: the text summary the demo and `ticketflow triage` print, and
// the HTML report of `triage --report`. Ticket-provided text (subjects, categories, ids, tenants,
// reasons) is escaped in the HTML. Its element ids (chart-categories, chart-cost, repeated,
// needs-human) are part of the report: triage_test.cpp and readers look for them.

#include <string>

#include "outcome.hpp"
#include "totals.hpp"

namespace ticketflow::triage {

// `totals` is totalsOf(report).
std::string textSummary(const TriageReport& report, const TriageTotals& totals);
// One self-contained HTML file with inline SVG charts (no scripts, no external resources).
std::string htmlReport(const TriageReport& report, const TriageTotals& totals);

}  // namespace ticketflow::triage
