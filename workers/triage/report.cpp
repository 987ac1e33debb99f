#include "report.hpp"

#include <algorithm>
#include <iomanip>
#include <sstream>

#include "pipeline/agreement_report.hpp"
#include "ticketflow/core/money.hpp"

namespace ticketflow::triage {
namespace {

std::string percent(std::size_t part, std::size_t whole) {
  std::ostringstream o;
  o << std::fixed << std::setprecision(1) << (whole ? 100.0 * double(part) / double(whole) : 0.0) << "%";
  return o.str();
}

std::string seconds(std::int64_t ms) {
  std::ostringstream o;
  o << std::fixed << std::setprecision(ms < 10'000 ? 2 : 1) << double(ms) / 1000.0 << " s";
  return o.str();
}

const char* const kLevels[] = {"easy", "medium", "hard"};

}  // namespace

std::string textSummary(const TriageReport& r, const TriageTotals& t) {
  std::ostringstream o;
  o << (r.dry_run ? "dry run (no model calls): " : "") << t.tickets << " tickets from " << r.source << " in "
    << std::fixed << std::setprecision(1) << r.seconds << " s\n";
  if (!r.skipped.empty()) {
    o << "  skipped " << r.skipped.size() << " rows:";
    for (std::size_t i = 0; i < std::min<std::size_t>(3, r.skipped.size()); ++i) o << "\n    " << r.skipped[i];
    if (r.skipped.size() > 3) o << "\n    ...";
    o << "\n";
  }
  if (r.missing)
    o << "  no outcome yet for " << r.missing
      << " submitted tickets (run again with the same --state to collect them)\n";
  std::size_t width = 10;
  for (const auto& [cat, levels] : t.by_category_difficulty) width = std::max(width, cat.size());
  o << "\n  " << std::left << std::setw(static_cast<int>(width)) << "category" << std::right;
  for (const char* level : kLevels) o << std::setw(8) << level;
  o << std::setw(8) << "total"
    << "\n";
  for (const auto& [cat, levels] : t.by_category_difficulty) {
    std::size_t total = 0;
    o << "  " << std::left << std::setw(static_cast<int>(width)) << cat << std::right;
    for (const char* level : kLevels) {
      const auto it = levels.find(level);
      const std::size_t n = it == levels.end() ? 0 : it->second;
      total += n;
      o << std::setw(8) << n;
    }
    o << std::setw(8) << total << "\n";
  }
  o << "\n  tiers:";
  for (const auto& tier : r.tiers) {
    const auto it = t.by_tier.find(tier);
    const std::size_t n = it == t.by_tier.end() ? 0 : it->second;
    o << "  " << tier << " " << n << " (" << percent(n, t.tickets) << ")";
  }
  o << "\n  cache: " << t.cacheHits() << " hits (" << percent(t.cacheHits(), t.tickets) << "): " << t.cache_exact
    << " exact, " << t.cache_semantic << " semantic"
    << (r.dry_run ? "" : ", " + std::to_string(t.cache_coalesced) + " coalesced (waited for a near-duplicate's answer)")
    << (r.dry_run && !r.cache_projected ? " (not projected: no redis-server)" : "") << "\n";
  if (!t.flow.empty()) {
    o << "  routed -> answered by (why it moved):\n";
    for (const auto& [from_to, flow] : t.flow) {
      o << "    " << from_to.first << " -> " << from_to.second << ": " << flow.tickets;
      std::string why;
      for (const auto& [reason, n] : flow.reasons) why += (why.empty() ? "" : ", ") + reason + " " + std::to_string(n);
      o << (why.empty() ? "" : " (" + why + ")") << "\n";
    }
  }
  if (t.classifier_vs_label.judged > 0) {
    o << "  against the file's labels (" << t.classifier_vs_label.judged << " labelled): classifier "
      << percent(t.classifier_vs_label.agreed, t.classifier_vs_label.judged);
    if (!t.answer_vs_label_by_tier.empty()) {
      TriageTotals::Agreement all;
      std::string per_tier;
      for (const auto& tier : r.tiers) {
        auto it = t.answer_vs_label_by_tier.find(tier);
        if (it == t.answer_vs_label_by_tier.end()) continue;
        all.judged += it->second.judged;
        all.agreed += it->second.agreed;
        per_tier += "  " + tier + " " + percent(it->second.agreed, it->second.judged) + " of " +
                    std::to_string(it->second.judged);
      }
      o << "; answers " << percent(all.agreed, all.judged) << " of " << all.judged << " (" << per_tier.substr(2) << ")";
    }
    o << "\n";
  }
  if (r.shadow) {
    std::istringstream shadow(pipeline::agreementText(*r.shadow, r.shadow_reference));
    for (std::string line; std::getline(shadow, line);) o << "  " << line << "\n";
    o << "    shadow calls cost " << formatUsd(r.shadow_spent)
      << " (budget bucket tier:shadow, not in the spend below)\n";
  }
  o << "  " << (r.dry_run ? "projected spend: " : "spend: ") << formatUsd(t.cost) << " vs "
    << formatUsd(t.frontier_cost) << " with every ticket on " << r.frontier_tier << ": " << std::fixed
    << std::setprecision(1) << 100.0 * t.savingShare() << "% saved\n";
  if (r.projected_range)
    o << "    calibrated by " << r.calibration_outcomes << " live outcomes: 95% range "
      << formatUsd(r.projected_range->first) << " to " << formatUsd(r.projected_range->second)
      << " (escalations and answer lengths as measured; per-tier"
      << " figures put each ticket's cost on the tier it is routed to)\n";
  o << "    by tier:";
  for (const auto& tier : r.tiers) {
    const auto it = t.cost_by_tier.find(tier);
    o << "  " << tier << " " << formatUsd(it == t.cost_by_tier.end() ? 0 : it->second);
  }
  o << "\n";
  if (t.latency_p50_ms)
    o << "  latency, intake to update: p50 " << seconds(*t.latency_p50_ms) << ", p95 " << seconds(*t.latency_p95_ms)
      << "\n";
  if (!r.dry_run)
    o << "  needs a human: " << t.needs_human << ", degraded (best effort): " << t.degraded
      << ", dead-lettered: " << t.dead_lettered << "\n";
  if (!t.repeated.empty()) {
    o << "  most repeated issues:\n";
    for (std::size_t i = 0; i < std::min<std::size_t>(5, t.repeated.size()); ++i) {
      const auto& c = t.repeated[i];
      o << "    " << c.tickets << " x " << c.tenant << "/" << c.source_ticket_id << " (" << c.category << ")\n";
    }
  }
  return o.str();
}

namespace {

std::string escape(const std::string& s) {
  return pipeline::htmlEscape(s);
}

const char* const kLevelColours[] = {"#4caf50", "#ffb300", "#e53935"};

// Horizontal stacked bars: tickets per category, split by difficulty.
std::string categoryChart(const TriageTotals& t) {
  std::size_t max_total = 1;
  for (const auto& [cat, levels] : t.by_category_difficulty) {
    std::size_t n = 0;
    for (const auto& [l, c] : levels) n += c;
    max_total = std::max(max_total, n);
  }
  const int row = 26, label = 200, bar = 460;
  const int height = row * static_cast<int>(t.by_category_difficulty.size()) + 40;
  std::ostringstream s;
  s << "<svg class=\"chart\" id=\"chart-categories\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" << label + bar + 60
    << "\" height=\"" << height << "\" role=\"img\" aria-label=\"Tickets per category and difficulty\">\n";
  int y = 10;
  for (const auto& [cat, levels] : t.by_category_difficulty) {
    s << "<text x=\"" << label - 8 << "\" y=\"" << y + 16 << "\" text-anchor=\"end\">" << escape(cat) << "</text>\n";
    double x = label;
    std::size_t total = 0;
    for (int i = 0; i < 3; ++i) {
      const auto it = levels.find(kLevels[i]);
      const std::size_t n = it == levels.end() ? 0 : it->second;
      total += n;
      const double w = double(bar) * double(n) / double(max_total);
      if (n)
        s << "<rect class=\"bar\" x=\"" << x << "\" y=\"" << y << "\" width=\"" << w << "\" height=\"" << row - 6
          << "\" fill=\"" << kLevelColours[i] << "\"><title>" << escape(cat) << ", " << kLevels[i] << ": " << n
          << "</title></rect>\n";
      x += w;
    }
    s << "<text x=\"" << x + 6 << "\" y=\"" << y + 16 << "\">" << total << "</text>\n";
    y += row;
  }
  int lx = label;
  for (int i = 0; i < 3; ++i) {
    s << "<rect x=\"" << lx << "\" y=\"" << y + 6 << "\" width=\"12\" height=\"12\" fill=\"" << kLevelColours[i]
      << "\"/><text x=\"" << lx + 16 << "\" y=\"" << y + 17 << "\">" << kLevels[i] << "</text>\n";
    lx += 90;
  }
  s << "</svg>\n";
  return s.str();
}

// Vertical bars: spend per tier, the total, and the same tickets all on the frontier tier.
std::string costChart(const TriageReport& r, const TriageTotals& t) {
  std::vector<std::pair<std::string, MicroUsd>> bars;
  for (const auto& tier : r.tiers) {
    const auto it = t.cost_by_tier.find(tier);
    bars.emplace_back(tier, it == t.cost_by_tier.end() ? 0 : it->second);
  }
  bars.emplace_back("total", t.cost);
  bars.emplace_back("all " + r.frontier_tier, t.frontier_cost);
  MicroUsd max = 1;
  for (const auto& [n, v] : bars) max = std::max(max, v);
  const int col = 110, chart_h = 220, top = 20;
  std::ostringstream s;
  s << "<svg class=\"chart\" id=\"chart-cost\" xmlns=\"http://www.w3.org/2000/svg\" width=\""
    << col * static_cast<int>(bars.size()) + 40 << "\" height=\"" << chart_h + top + 50
    << "\" role=\"img\" aria-label=\"Spend per tier against all-frontier\">\n";
  int x = 20;
  for (std::size_t i = 0; i < bars.size(); ++i) {
    const double h = double(chart_h) * double(bars[i].second) / double(max);
    const bool frontier = i + 1 == bars.size();
    s << "<rect class=\"bar\" x=\"" << x << "\" y=\"" << top + chart_h - h << "\" width=\"" << col - 30
      << "\" height=\"" << h << "\" fill=\""
      << (frontier               ? "#9e9e9e"
          : i + 2 == bars.size() ? "#1e88e5"
                                 : "#64b5f6")
      << "\"><title>" << escape(bars[i].first) << ": " << formatUsd(bars[i].second) << "</title></rect>\n"
      << "<text x=\"" << x + (col - 30) / 2 << "\" y=\"" << top + chart_h - h - 4 << "\" text-anchor=\"middle\">"
      << formatUsd(bars[i].second) << "</text>\n"
      << "<text x=\"" << x + (col - 30) / 2 << "\" y=\"" << top + chart_h + 18 << "\" text-anchor=\"middle\">"
      << escape(bars[i].first) << "</text>\n";
    x += col;
  }
  s << "</svg>\n";
  return s.str();
}

}  // namespace

std::string htmlReport(const TriageReport& r, const TriageTotals& t) {
  std::ostringstream h;
  const std::size_t hits = t.cacheHits();
  h << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>ticketflow triage report: "
    << escape(r.source) << "</title>\n<style>\n"
    << "body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}"
       "h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em}"
       "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
       "th{background:#f3f3f3}td.n{text-align:right}.chart text{font-size:12px;fill:#333}"
       ".kpi{display:inline-block;margin:0 2em 1em 0}.kpi b{display:block;font-size:1.6em}"
       "td.low{background:#fdecea}tr.total td{font-weight:600}\n"
    << "</style></head><body>\n";
  h << "<h1>Triage report: " << escape(r.source) << "</h1>\n<p>"
    << (r.dry_run ? "Dry run: classified and priced locally, no model calls. " : "") << t.tickets << " tickets in "
    << std::fixed << std::setprecision(1) << r.seconds << " s.";
  if (!r.skipped.empty()) h << " " << r.skipped.size() << " rows skipped (listed at the end).";
  if (r.missing) h << " " << r.missing << " submitted tickets had no outcome yet.";
  h << "</p>\n<div>"
    << "<span class=\"kpi\"><b>" << formatUsd(t.cost) << "</b>" << (r.dry_run ? "projected spend" : "spend")
    << "</span>"
    << "<span class=\"kpi\"><b>" << formatUsd(t.frontier_cost) << "</b>all on " << escape(r.frontier_tier) << "</span>"
    << "<span class=\"kpi\"><b>" << std::setprecision(1) << 100.0 * t.savingShare() << "%</b>saved</span>"
    << "<span class=\"kpi\"><b>" << percent(hits, t.tickets) << "</b>cache hits</span>"
    << "<span class=\"kpi\"><b>" << (r.dry_run ? std::string("n/a") : std::to_string(t.needs_human))
    << "</b>need a human</span></div>\n";
  h << "<h2>Tickets per category and difficulty</h2>\n" << categoryChart(t);
  h << "<table><tr><th>category</th><th>easy</th><th>medium</th><th>hard</th><th>total</th></tr>\n";
  for (const auto& [cat, levels] : t.by_category_difficulty) {
    std::size_t total = 0;
    h << "<tr><td>" << escape(cat) << "</td>";
    for (const char* level : kLevels) {
      const auto it = levels.find(level);
      const std::size_t n = it == levels.end() ? 0 : it->second;
      total += n;
      h << "<td class=\"n\">" << n << "</td>";
    }
    h << "<td class=\"n\">" << total << "</td></tr>\n";
  }
  h << "</table>\n<h2>" << (r.dry_run ? "Projected cost" : "Cost") << " per tier against every ticket on "
    << escape(r.frontier_tier) << "</h2>\n"
    << costChart(r, t);
  h << "<table><tr><th>tier</th><th>tickets</th><th>spend</th></tr>\n";
  for (const auto& tier : r.tiers) {
    const auto n = t.by_tier.count(tier) ? t.by_tier.at(tier) : 0;
    const auto c = t.cost_by_tier.count(tier) ? t.cost_by_tier.at(tier) : 0;
    h << "<tr><td>" << escape(tier) << "</td><td class=\"n\">" << n << "</td><td class=\"n\">" << formatUsd(c)
      << "</td></tr>\n";
  }
  h << "</table>\n";
  if (!t.flow.empty()) {
    h << "<h2>Routed tier to the tier that answered</h2>\n<table><tr><th>routed to</th><th>answered by</th>"
         "<th>tickets</th><th>why it moved</th></tr>\n";
    for (const auto& [from_to, flow] : t.flow) {
      std::string why;
      for (const auto& [reason, n] : flow.reasons) why += (why.empty() ? "" : ", ") + reason + " " + std::to_string(n);
      h << "<tr><td>" << escape(from_to.first) << "</td><td>" << escape(from_to.second) << "</td><td class=\"n\">"
        << flow.tickets << "</td><td>" << escape(why) << "</td></tr>\n";
    }
    h << "</table>\n";
  }
  if (t.classifier_vs_label.judged > 0) {
    h << "<h2>Against the file's own labels</h2>\n<table><tr><th>who</th><th>agrees</th><th>of</th></tr>\n"
      << "<tr><td>classifier</td><td class=\"n\">"
      << percent(t.classifier_vs_label.agreed, t.classifier_vs_label.judged) << "</td><td class=\"n\">"
      << t.classifier_vs_label.judged << "</td></tr>\n";
    for (const auto& tier : r.tiers)
      if (auto it = t.answer_vs_label_by_tier.find(tier); it != t.answer_vs_label_by_tier.end())
        h << "<tr><td>answers at " << escape(tier) << "</td><td class=\"n\">"
          << percent(it->second.agreed, it->second.judged) << "</td><td class=\"n\">" << it->second.judged
          << "</td></tr>\n";
    h << "</table>\n";
  }
  if (r.shadow)
    h << pipeline::agreementHtml(*r.shadow, r.shadow_reference) << "<p>Shadow calls cost " << formatUsd(r.shadow_spent)
      << " (budget bucket tier:shadow), not counted in the spend above.</p>\n";
  if (t.latency_p50_ms)
    h << "<p>Latency from intake to update: p50 " << seconds(*t.latency_p50_ms) << ", p95 "
      << seconds(*t.latency_p95_ms) << ".</p>\n";
  h << "<h2>Most repeated issues (cache clusters)</h2>\n";
  if (t.repeated.empty()) {
    h << "<p>No ticket was answered from another's answer.</p>\n";
  } else {
    h << "<table id=\"repeated\"><tr><th>tickets</th><th>tenant</th><th>first "
         "ticket</th><th>category</th><th>subject</th></tr>\n";
    for (std::size_t i = 0; i < std::min<std::size_t>(20, t.repeated.size()); ++i) {
      const auto& c = t.repeated[i];
      h << "<tr><td class=\"n\">" << c.tickets << "</td><td>" << escape(c.tenant) << "</td><td>"
        << escape(c.source_ticket_id) << "</td><td>" << escape(c.category) << "</td><td>" << escape(c.subject)
        << "</td></tr>\n";
    }
    h << "</table>\n";
  }
  h << "<h2>Tickets that need a human</h2>\n";
  std::size_t listed = 0;
  for (const auto& o : r.outcomes) {
    if (!o.needs_human && !o.dead_lettered) continue;
    if (listed == 0)
      h << "<table "
           "id=\"needs-human\"><tr><th>ticket</th><th>tenant</th><th>category</th><th>tier</th><th>why</th></tr>\n";
    if (++listed > 500) break;
    h << "<tr><td>" << escape(o.ticket_id) << "</td><td>" << escape(o.tenant) << "</td><td>" << escape(o.category)
      << "</td><td>" << escape(o.tier) << "</td><td>"
      << escape(o.dead_lettered ? "dead-lettered: " + o.error : o.needs_human_reason) << "</td></tr>\n";
  }
  h << (listed      ? "</table>\n"
        : r.dry_run ? "<p>A dry run does not ask models, so it cannot tell.</p>\n"
                    : "<p>None.</p>\n");
  if (!r.skipped.empty()) {
    h << "<h2>Skipped rows</h2>\n<ul>\n";
    for (const auto& s : r.skipped) h << "<li>" << escape(s) << "</li>\n";
    h << "</ul>\n";
  }
  h << "</body></html>\n";
  return h.str();
}

}  // namespace ticketflow::triage
