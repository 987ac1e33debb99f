#include "parking_role.hpp"

#include <map>
#include <random>

#include <unistd.h>

#include "ticketflow/core/thread_name.hpp"
#include "ticketflow/core/utf8.hpp"

namespace ticketflow::intake {
namespace {

constexpr auto kCheckEvery = std::chrono::seconds(1);
constexpr int kPublishEveryChecks = 5;
constexpr auto kPublishedFor = std::chrono::seconds(30);  // a dead process stops counting then

std::string instanceName() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  std::random_device rd;
  return std::string(host) + ":" + std::to_string(getpid()) + ":" + std::to_string(rd() % 100000);
}

std::chrono::system_clock::time_point headerTime(const stage::Delivery& d, const char* name,
                                                 std::chrono::system_clock::time_point fallback) {
  auto value = d.message.header(name);
  if (!value) return fallback;
  auto parsed = parseRfc3339(*value);
  return parsed ? *parsed : fallback;
}

// Due when its cap's period ended, or an operator released its tenant (or every tenant) after it
// was parked.
bool due(const RoutedTicket& ticket, std::chrono::system_clock::time_point parked_at,
         std::chrono::system_clock::time_point until, std::chrono::system_clock::time_point now,
         const std::map<std::string, std::int64_t>& releases) {
  if (now >= until) return true;
  for (const std::string& who : {ticket.ticket.tenant, std::string("*")}) {
    auto it = releases.find(who);
    if (it != releases.end() && it->second >= epochMillis(parked_at)) return true;
  }
  return false;
}

}  // namespace

ParkingRole::ParkingRole(const Config& config, redis::BudgetLedger* ledger, const Clock& clock,
                         observability::PipelineMetrics* metrics, observability::Logger* logger)
    : config_(config), ledger_(ledger), clock_(clock), metrics_(metrics), logger_(logger), instance_(instanceName()) {
  checker_ = std::thread([this] {
    nameThisThread("tf-parking");
    checkLoop();
  });
}

ParkingRole::~ParkingRole() {
  stop();
  if (checker_.joinable()) checker_.join();
}

stage::Handler ParkingRole::handler() {
  return [this](const std::shared_ptr<const stage::Delivery>& delivery, stage::Completion completion) {
    auto ticket = parseRoutedTicket(delivery->message.value);
    if (!ticket) return completion.fail(ticket.error());  // malformed: dead letter at once
    const auto now = clock_.now();
    Parked parked{std::move(completion), std::move(*ticket), headerTime(*delivery, kParkedAtHeader, now),
                  headerTime(*delivery, kParkedUntilHeader, now),
                  // Anyone who can write to the topic sets it: bounded before it is logged or published.
                  utf8Prefix(delivery->message.header(kParkedReasonHeader).value_or(""), 300)};
    if (now >= parked.until) return sendBack(parked);
    std::lock_guard lock(mutex_);
    if (stopping_) {
      parked.completion.fail(Error::unavailable("parking is stopping").asOutage("budget"));
      return;
    }
    parked_.push_back(std::move(parked));  // a release is noticed at the next check
  };
}

void ParkingRole::sendBack(Parked& parked) {
  RoutedTicket back = std::move(parked.ticket);
  back.budget_state = BudgetState::kOk;
  if (logger_)
    logger_->info("ticket_unparked", {{"ticket_id", back.ticket.id}, {"trace_id", back.trace_id}, {"tier", back.tier}});
  const std::string topic = config_.kafka.tierTopic(back.tier);
  const std::string key = back.ticket.id;
  parked.completion.succeed({{topic, key, toJson(back), {}, {}}});
}

void ParkingRole::stop() {
  std::list<Parked> left;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    left.swap(parked_);
  }
  wake_.notify_all();
  for (auto& p : left) p.completion.fail(Error::unavailable("parking is stopping").asOutage("budget"));
}

void ParkingRole::checkLoop() {
  for (int round = 0;; ++round) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait_for(lock, kCheckEvery, [this] { return stopping_; });
      if (stopping_) break;
    }
    std::map<std::string, std::int64_t> releases;
    if (ledger_) {
      auto r = ledger_->parkedReleases();
      if (r) releases = std::move(*r);  // Redis down: only parked-until counts meanwhile
    }
    const auto now = clock_.now();
    std::list<Parked> ready;
    std::map<std::string, redis::BudgetLedger::ParkedTenant> counts;
    std::int64_t total = 0;
    {
      std::lock_guard lock(mutex_);
      for (auto it = parked_.begin(); it != parked_.end();) {
        if (due(it->ticket, it->parked_at, it->until, now, releases)) {
          ready.splice(ready.end(), parked_, it++);
          continue;
        }
        auto& c = counts[it->ticket.ticket.tenant];
        ++c.tickets;
        c.reason = it->reason;
        ++total;
        ++it;
      }
    }
    for (auto& p : ready) sendBack(p);
    if (metrics_) metrics_->parked_tickets.with({}).set(static_cast<double>(total));
    if (ledger_ && round % kPublishEveryChecks == 0) (void)ledger_->publishParked(instance_, counts, kPublishedFor);
  }
  if (ledger_) (void)ledger_->publishParked(instance_, {}, kPublishedFor);
}

}  // namespace ticketflow::intake
