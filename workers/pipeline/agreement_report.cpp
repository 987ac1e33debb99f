#include "agreement_report.hpp"

#include <cmath>
#include <iomanip>
#include <sstream>

namespace ticketflow::pipeline {

std::string htmlEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

namespace {

// A tier's comparisons over every category.
redis::AgreementCell pooled(const std::map<std::string, redis::AgreementCell>& categories) {
  redis::AgreementCell all;
  for (const auto& [category, c] : categories) {
    all.answered += c.answered;
    for (auto [to, from] :
         {std::pair{&all.category, &c.category}, {&all.needs_human, &c.needs_human}, {&all.both, &c.both}}) {
      to->successes += from->successes;
      to->trials += from->trials;
    }
  }
  return all;
}

std::string pct(double x) {
  std::ostringstream o;
  o << std::fixed << std::setprecision(1) << 100.0 * x << "%";
  return o.str();
}

std::string withInterval(const redis::Proportion& p) {
  if (p.trials == 0) return "-";
  return pct(p.estimate()) + " [" + pct(p.lower()) + ", " + pct(p.upper()) + "]";
}

}  // namespace

FinalAgreement finalAgreement(const redis::AgreementTable& table, const std::string& reference_tier) {
  FinalAgreement f;
  double variance = 0, weight = 0;
  auto varianceOf = [](const redis::Proportion& p) {
    const double e = p.estimate(), n = static_cast<double>(p.trials);
    return std::max(e * (1 - e), 0.25 / n) / n;  // never 0: a perfect small sample is not certain
  };
  for (const auto& [tier, categories] : table) {
    const redis::AgreementCell tier_all = pooled(categories);
    double borrowed = 0;  // weight of the categories that take the tier's figure: one error, not several
    for (const auto& [category, cell] : categories) {
      if (cell.answered == 0) continue;
      const double w = static_cast<double>(cell.answered);
      f.answered += cell.answered;
      if (tier == reference_tier) {  // the reference agrees with itself
        weight += w;
        f.category += w;
        f.needs_human += w;
        f.both += w;
        continue;
      }
      // A category with no comparison of its own takes its tier's over every category.
      const bool own = cell.both.trials > 0;
      const redis::AgreementCell& measured = own ? cell : tier_all;
      if (measured.both.trials == 0) continue;  // nothing measured for the tier: left out of the weights
      weight += w;
      f.compared += cell.both.trials;
      f.category += w * measured.category.estimate();
      f.needs_human += w * measured.needs_human.estimate();
      f.both += w * measured.both.estimate();
      if (own) {
        variance += w * w * varianceOf(cell.both);
      } else {
        borrowed += w;
      }
    }
    if (borrowed > 0 && tier_all.both.trials > 0) variance += borrowed * borrowed * varianceOf(tier_all.both);
  }
  if (weight <= 0) return f;
  f.category /= weight;
  f.needs_human /= weight;
  f.both /= weight;
  const double half = 1.959964 * std::sqrt(variance) / weight;
  f.both_lower = std::max(0.0, f.both - half);
  f.both_upper = std::min(1.0, f.both + half);
  return f;
}

std::string agreementText(const redis::AgreementTable& table, const std::string& reference_tier) {
  std::ostringstream o;
  o << "shadow evaluation: agreement with the reference tier (" << reference_tier << "), 95% Wilson intervals\n";
  if (table.empty()) {
    o << "  nothing measured yet (shadow.sample is 0, or no sampled ticket has been compared)\n";
    return o.str();
  }
  o << "  " << std::left << std::setw(10) << "tier" << std::setw(26) << "category" << std::right << std::setw(9)
    << "answered" << std::setw(9) << "compared"
    << "  " << std::left << std::setw(24) << "category agrees" << std::setw(24) << "needs_human agrees"
    << "both agree\n";
  for (const auto& [tier, categories] : table) {
    if (tier == reference_tier) continue;
    auto row = [&](const std::string& category, const redis::AgreementCell& c) {
      o << "  " << std::left << std::setw(10) << tier << std::setw(26) << category << std::right << std::setw(9)
        << c.answered << std::setw(9) << c.both.trials << "  " << std::left << std::setw(24) << withInterval(c.category)
        << std::setw(24) << withInterval(c.needs_human) << withInterval(c.both) << "\n";
    };
    for (const auto& [category, cell] : categories) row(category, cell);
    row("(all)", pooled(categories));
  }
  const FinalAgreement f = finalAgreement(table, reference_tier);
  if (f.answered > 0) {
    o << "  final model answers: " << f.answered << " (reference tier's included); estimated agreement: category "
      << pct(f.category) << ", needs_human " << pct(f.needs_human) << ", both " << pct(f.both) << " ["
      << pct(f.both_lower) << ", " << pct(f.both_upper) << "] from " << f.compared << " comparisons\n";
  }
  return o.str();
}

std::string agreementHtml(const redis::AgreementTable& table, const std::string& reference_tier) {
  std::ostringstream o;
  o << "<h2>Shadow evaluation</h2>\n<p>A sample of the answers of tiers below <b>" << htmlEscape(reference_tier)
    << "</b> was answered again by it and compared on what a helpdesk acts on. Intervals are 95% (Wilson).</p>\n";
  if (table.empty()) return o.str() + "<p>Nothing measured (shadow.sample is 0).</p>\n";
  const FinalAgreement f = finalAgreement(table, reference_tier);
  if (f.answered > 0)
    o << "<p>Final model answers: " << f.answered << ". Estimated agreement with " << htmlEscape(reference_tier)
      << ": category " << pct(f.category) << ", needs_human " << pct(f.needs_human) << ", both <b>" << pct(f.both)
      << "</b> (" << pct(f.both_lower) << " to " << pct(f.both_upper) << ", " << f.compared << " comparisons).</p>\n";
  o << "<p>Shaded: agreement surely below 90% (the interval's upper end is under it).</p>\n";
  o << "<table><tr><th>tier</th><th>category</th><th>answered</th><th>compared</th><th>category agrees</th>"
       "<th>needs_human agrees</th><th>both agree</th></tr>\n";
  for (const auto& [tier, categories] : table) {
    if (tier == reference_tier) continue;
    auto row = [&](const std::string& category, const redis::AgreementCell& c, bool total) {
      const char* cls = c.both.trials > 0 && c.both.upper() < 0.9 ? " class=\"low\"" : "";
      o << "<tr" << (total ? " class=\"total\"" : "") << "><td>" << htmlEscape(tier) << "</td><td>"
        << htmlEscape(category) << "</td><td>" << c.answered << "</td><td>" << c.both.trials << "</td><td>"
        << withInterval(c.category) << "</td><td>" << withInterval(c.needs_human) << "</td><td" << cls << ">"
        << withInterval(c.both) << "</td></tr>\n";
    };
    for (const auto& [category, cell] : categories) row(category, cell, false);
    row("(all)", pooled(categories), true);
  }
  o << "</table>\n";
  return o.str();
}

}  // namespace ticketflow::pipeline
