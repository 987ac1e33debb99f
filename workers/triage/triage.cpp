#include "triage.hpp"

#include <map>
#include <stdexcept>
#include <utility>
#include <vector>

#include "dry_run.hpp"
#include "live_run.hpp"

namespace ticketflow::triage {
namespace {

struct LoadedTickets {
  std::vector<Ticket> tickets;
  std::vector<std::string> skipped;
};

LoadedTickets loadTickets(const TriageOptions& options) {
  auto records = readTicketRecords(options.path);
  if (!records) throw std::runtime_error(records.error().message);
  LoadedTickets out;
  std::map<std::string, std::size_t> seen;  // key -> line
  for (const auto& record : *records) {
    if (options.limit && out.tickets.size() >= options.limit) break;
    auto ticket = ticketFromRecord(record, options.columns, options.defaults);
    if (!ticket) {
      out.skipped.push_back(options.path + ": " + ticket.error().message);
      continue;
    }
    const std::string key = ticketKey(ticket->tenant, ticket->id);
    if (auto [it, fresh] = seen.emplace(key, record.line); !fresh) {
      out.skipped.push_back(options.path + ": line " + std::to_string(record.line) + ": ticket " + ticket->id + " of " +
                            ticket->tenant + " repeats line " + std::to_string(it->second));
      continue;
    }
    out.tickets.push_back(std::move(*ticket));
  }
  return out;
}

}  // namespace

TriageReport runTriage(Config config, const TriageOptions& options) {
  LoadedTickets loaded = loadTickets(options);
  // Read before the live run takes the configuration (its local stack rewrites addresses, not tiers).
  std::vector<std::string> tiers;
  for (const auto& t : config.tiers) tiers.push_back(t.name);
  TriageReport report =
      options.dry_run ? dryRun(config, options, loaded.tickets) : liveRun(std::move(config), options, loaded.tickets);
  report.tiers = std::move(tiers);
  report.frontier_tier = report.tiers.back();
  report.skipped = std::move(loaded.skipped);
  return report;
}

}  // namespace ticketflow::triage
