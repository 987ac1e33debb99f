// budget show|set|reset|release: spend against caps in the budget ledger.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "command.hpp"
#include "pipeline/agreement_report.hpp"
#include "ticketflow/classify/category_model.hpp"
#include "ticketflow/classify/escalation_model.hpp"
#include "ticketflow/config/config.hpp"
#include "ticketflow/core/stats.hpp"
#include "ticketflow/redis/agreement_store.hpp"
#include "ticketflow/redis/budget_ledger.hpp"
#include "ticketflow/redis/embedded_server.hpp"
#include "ticketflow/redis/feedback_store.hpp"
#include "ticketflow/redis/pool.hpp"
#include "ticketflow/redis/route_shares.hpp"
#include "ticketflow/redis/semantic_cache.hpp"

namespace ticketflow::app {

namespace {

using Steady = std::chrono::steady_clock;

MicroUsd parseUsd(const std::string& text) {
  std::size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || value < 0 || !std::isfinite(value))
    throw cli::UsageError("--usd: expected a non-negative amount in dollars, e.g. 12.50");
  return static_cast<MicroUsd>(std::llround(value * kMicroUsdPerUsd));
}

BudgetScope parseScopeArg(const std::string& s) {
  if (s == "global") return BudgetScope::kGlobal;
  if (s == "tenant") return BudgetScope::kTenant;
  if (s == "tier") return BudgetScope::kTier;
  throw cli::UsageError("--scope: expected global, tenant or tier");
}

redis::BudgetPeriod parsePeriodArg(const std::string& s) {
  if (s == "day") return redis::BudgetPeriod::kDay;
  if (s == "month") return redis::BudgetPeriod::kMonth;
  throw cli::UsageError("--period: expected day or month");
}

std::string scopeNameArg(const cli::ParsedArgs& args, BudgetScope scope) {
  const std::string name = args.find("name").value_or("");
  if (scope != BudgetScope::kGlobal && name.empty()) throw cli::UsageError("--name: scope tenant or tier needs a name");
  if (scope == BudgetScope::kGlobal && !name.empty()) throw cli::UsageError("--name: the global scope has no name");
  return name;
}

redis::BudgetLedger makeLedger(const Config& config) {
  return redis::BudgetLedger(connectConfigured(config), config.budgets, config.redis.key_prefix);
}

int runBudgetShow(const cli::ParsedArgs& args) {
  const Config config = loadConfigOption(args);
  auto ledger = makeLedger(config);
  auto rows = ledger.show();
  if (!rows) throw std::runtime_error(rows.error().message);
  std::cout << std::left << std::setw(8) << "scope" << std::setw(18) << "name" << std::setw(7) << "period"
            << std::setw(12) << "id" << std::right << std::setw(16) << "settled" << std::setw(16) << "reserved"
            << std::setw(16) << "cap" << std::setw(8) << "used"
            << "\n";
  for (const auto& r : *rows) {
    std::ostringstream used;
    if (r.cap && *r.cap > 0)
      used << std::fixed << std::setprecision(1)
           << 100.0 * static_cast<double>(r.settled + r.reserved) / static_cast<double>(*r.cap) << "%";
    else
      used << "-";
    std::cout << std::left << std::setw(8) << r.scope << std::setw(18) << (r.name.empty() ? "-" : r.name)
              << std::setw(7) << r.period << std::setw(12) << r.period_id << std::right << std::setw(16)
              << formatUsdExact(r.settled) << std::setw(16) << formatUsdExact(r.reserved) << std::setw(16)
              << (r.cap ? formatUsdExact(*r.cap) : "none") << std::setw(8) << used.str()
              << (r.uncharged > 0 ? "  uncharged " + formatUsdExact(r.uncharged) : "") << "\n";
  }
  std::cout << "policy when a cap has no room: " << budgetPolicyName(config.budgets.on_exhausted)
            << "; audit stream: " << ledger.auditStreamKey() << "\n";
  if (auto parked = ledger.parked(); parked && !parked->empty()) {
    std::cout << "parked (deferred by a cap; back when its period ends, or `ticketflow budget release`):\n";
    for (const auto& [tenant, p] : *parked)
      std::cout << "  " << std::left << std::setw(18) << tenant << std::right << std::setw(8) << p.tickets
                << " ticket(s)  " << p.reason << "\n";
  }
  if (auto warning = ledger.persistenceWarning(); warning && !warning->empty())
    std::cerr << "warning: " << *warning << "\n";
  return kExitOk;
}

int runBudgetRelease(const cli::ParsedArgs& args) {
  const Config config = loadConfigOption(args);
  auto ledger = makeLedger(config);
  const auto tenant = args.find("tenant");
  if (tenant && tenant->empty()) throw cli::UsageError("--tenant: expected a tenant name");
  if (auto st = ledger.releaseParked(tenant); !st) throw std::runtime_error(st.error().message);
  std::cout << "released the tickets parked so far for " << (tenant ? "tenant " + *tenant : "every tenant")
            << ": they go back to their tiers within a few seconds (a cap still without room parks them again)\n";
  return kExitOk;
}

int runBudgetSet(const cli::ParsedArgs& args) {
  const Config config = loadConfigOption(args);
  const BudgetScope scope = parseScopeArg(args.get("scope"));
  const std::string name = scopeNameArg(args, scope);
  const auto period = parsePeriodArg(args.get("period"));
  if (args.has("usd") == args.has("none")) throw cli::UsageError("give exactly one of --usd AMOUNT or --none");
  const std::optional<MicroUsd> cap =
      args.has("usd") ? std::optional<MicroUsd>(parseUsd(args.get("usd"))) : std::nullopt;
  auto ledger = makeLedger(config);
  if (auto st = ledger.setCap(scope, name, period, cap); !st) throw std::runtime_error(st.error().message);
  std::cout << "cap " << redis::budgetScopeName(scope) << (name.empty() ? "" : ":" + name) << " per "
            << redis::budgetPeriodName(period) << " set to " << (cap ? formatUsdExact(*cap) : "none (uncapped)")
            << " (overrides the configuration until `ticketflow budget reset --cap`)\n";
  return kExitOk;
}

int runBudgetReset(const cli::ParsedArgs& args) {
  const Config config = loadConfigOption(args);
  const auto period = parsePeriodArg(args.get("period"));
  auto ledger = makeLedger(config);
  if (args.has("cap")) {
    const BudgetScope scope = parseScopeArg(args.get("scope"));
    const std::string name = scopeNameArg(args, scope);
    if (auto st = ledger.resetCap(scope, name, period); !st) throw std::runtime_error(st.error().message);
    std::cout << "cap " << redis::budgetScopeName(scope) << (name.empty() ? "" : ":" + name) << " per "
              << redis::budgetPeriodName(period) << " back to the configured value\n";
    return kExitOk;
  }
  std::optional<BudgetScope> scope;
  std::string name;
  if (args.has("scope")) {
    scope = parseScopeArg(args.get("scope"));
    name = scopeNameArg(args, *scope);
  }
  if (auto st = ledger.resetSpend(scope, name, period); !st) throw std::runtime_error(st.error().message);
  std::cout << "spend of the current " << redis::budgetPeriodName(period) << " reset for "
            << (scope ? std::string(redis::budgetScopeName(*scope)) + (name.empty() ? "" : ":" + name) : "every scope")
            << " (outstanding reservations kept)\n";
  return kExitOk;
}

// Stats and purge embed no text, so they need no embeddings endpoint (nor its API key).
}  // namespace

std::vector<Command> budgetCommands() {
  const auto cfg = configOption();
  const cli::OptionSpec scope{"scope", "S", "global, tenant or tier", ""};
  const cli::OptionSpec name{"name", "NAME", "tenant or tier name (not for global)", ""};
  const cli::OptionSpec period{"period", "P", "day or month (UTC)", ""};
  return {
      {{"budget show",
        "print spend against caps per tenant, tier and period",
        "",
        0,
        0,
        {cfg},
        "Current UTC day and month: settled spend, outstanding reservations and the cap of every capped\n"
        "bucket and every bucket with activity. Reads the ledger in the configured Redis."},
       runBudgetShow,
       ""},
      {{"budget set",
        "set a budget cap",
        "",
        0,
        0,
        {cfg,
         scope,
         name,
         period,
         {"usd", "AMOUNT", "cap in dollars, e.g. 250.00", ""},
         {"none", "", "no cap for this bucket", ""}},
        "The cap is kept in Redis and overrides budgets.caps for every replica at once.\n"
        "Example: ticketflow budget set --scope tenant --name acme --period day --usd 25"},
       runBudgetSet,
       ""},
      {{"budget reset",
        "reset spend counters (or a cap override with --cap)",
        "",
        0,
        0,
        {cfg, scope, name, period, {"cap", "", "remove the cap set by `budget set` instead of resetting spend", ""}},
        "Without --scope resets the current period's spend of every bucket. Outstanding reservations are\n"
        "kept (their settle or release still lands)."},
       runBudgetReset,
       ""},
      {{"budget release",
        "send tickets a cap deferred back to their tiers now",
        "",
        0,
        0,
        {cfg, {"tenant", "T", "only this tenant's (default: every tenant's)", ""}},
        "Tickets deferred by a cap (budgets.on_exhausted: defer) are parked on kafka.topics.deferred until\n"
        "the cap's period ends. This lets those parked so far go back at once, e.g. after raising a cap\n"
        "with `ticketflow budget set`. `ticketflow budget show` lists what is parked."},
       runBudgetRelease,
       ""},
  };
}

}  // namespace ticketflow::app
