#include "ticketflow/redis/budget_ledger.hpp"

#include <atomic>
#include <random>
#include <thread>

#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "fixtures/services.hpp"

namespace ticketflow {
namespace {

using redis::BudgetLedger;
using redis::BudgetPeriod;
using redis::BudgetRequest;

class BudgetLedgerTest : public testing::RedisTest {
 protected:
  void SetUp() override {
    // A fixed noon UTC: the periods never roll over during a test, and expiry moves only when
    // the test advances the clock.
    clock_.setWall(std::chrono::system_clock::from_time_t(1795348800));  // 2026-11-22T12:00:00Z
  }
  std::shared_ptr<redis::RedisPool> makePool(int size = 4) const {
    redis::RedisPoolOptions options;
    options.endpoint.port = server().port();
    options.pool_size = size;
    options.command_timeout = std::chrono::seconds(5);
    return std::make_shared<redis::RedisPool>(options);
  }
  BudgetsConfig budgets(MicroUsd global_daily) const {
    BudgetsConfig c;
    c.reservation_ttl_s = 60;
    BudgetCap global;
    global.daily_micro_usd = global_daily;
    c.caps.push_back(global);
    return c;
  }
  static const redis::BucketSpend* find(const std::vector<redis::BucketSpend>& rows, const std::string& scope,
                                        const std::string& name, const std::string& period) {
    for (const auto& r : rows)
      if (r.scope == scope && r.name == name && r.period == period) return &r;
    return nullptr;
  }
  static MicroUsd globalSettled(BudgetLedger& ledger) {
    auto rows = ledger.show();
    EXPECT_TRUE(rows.ok()) << rows.error().message;
    const auto* global = rows.ok() ? find(*rows, "global", "", "day") : nullptr;
    return global ? global->settled : -1;
  }
  ManualClock clock_;
};

TEST_F(BudgetLedgerTest, ReserveSettleReleaseMoveSpendAndRedeliveryChargesOnce) {
  BudgetLedger ledger(makePool(), budgets(10'000), key_prefix_, clock_);
  auto r = ledger.reserve({"t-1", 1, "acme", "fast", 4'000});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->reserved);
  EXPECT_FALSE(r->replayed);
  auto again = ledger.reserve({"t-1", 1, "acme", "fast", 4'000});
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->replayed);

  auto s = ledger.settle("t-1", 1, 2'500);
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->charged, 2'500);
  EXPECT_FALSE(s->replayed);
  auto s2 = ledger.settle("t-1", 1, 2'500);
  ASSERT_TRUE(s2.ok());
  EXPECT_TRUE(s2->replayed);
  EXPECT_EQ(s2->charged, 2'500);

  ASSERT_TRUE(ledger.reserve({"t-2", 1, "acme", "fast", 3'000})->reserved);
  ASSERT_TRUE(ledger.release("t-2", 1).ok());
  ASSERT_TRUE(ledger.release("t-2", 1).ok());
  EXPECT_EQ(ledger.settle("t-2", 1, 100).error().code, ErrorCode::kNotFound);

  auto rows = ledger.show();
  ASSERT_TRUE(rows.ok()) << rows.error().message;
  const auto* global = find(*rows, "global", "", "day");
  ASSERT_NE(global, nullptr);
  EXPECT_EQ(global->settled, 2'500);
  EXPECT_EQ(global->reserved, 0);
  EXPECT_EQ(global->cap, 10'000);
  const auto* tenant = find(*rows, "tenant", "acme", "month");
  ASSERT_NE(tenant, nullptr);
  EXPECT_EQ(tenant->settled, 2'500);

  auto audit = connect()->command({"XLEN", ledger.auditStreamKey()});
  ASSERT_TRUE(audit.ok());
  EXPECT_EQ(audit->integer, 1);
}

TEST_F(BudgetLedgerTest, NoRoomReturnsThePolicyAndTheExhaustedBucket) {
  auto config = budgets(1'000'000);
  BudgetCap tier;
  tier.scope = BudgetScope::kTier;
  tier.tier = "frontier";
  tier.monthly_micro_usd = 5'000;
  config.caps.push_back(tier);
  config.on_exhausted = BudgetPolicy::kHuman;
  BudgetLedger ledger(makePool(), config, key_prefix_, clock_);
  ASSERT_TRUE(ledger.reserve({"a", 1, "acme", "frontier", 4'000})->reserved);
  auto blocked = ledger.reserve({"b", 1, "acme", "frontier", 1'001});  // counts the outstanding 4000
  ASSERT_TRUE(blocked.ok());
  EXPECT_FALSE(blocked->reserved);
  EXPECT_EQ(blocked->policy, BudgetPolicy::kHuman);
  EXPECT_EQ(blocked->exhausted_bucket, "tier:frontier:month:2026-11");
  EXPECT_TRUE(blocked->reservations_in_the_way);  // only a's outstanding 4000 stands in the way
  EXPECT_TRUE(ledger.reserve({"c", 1, "acme", "fast", 1'001})->reserved);  // other tier: no tier cap

  // A cap set at run time overrides the configured one.
  ASSERT_TRUE(ledger.setCap(BudgetScope::kTier, "frontier", BudgetPeriod::kMonth, 10'000).ok());
  EXPECT_TRUE(ledger.reserve({"b", 2, "acme", "frontier", 1'001})->reserved);
  ASSERT_TRUE(ledger.setCap(BudgetScope::kTenant, "acme", BudgetPeriod::kDay, 0).ok());
  auto no_room = ledger.reserve({"d", 1, "acme", "fast", 1});
  EXPECT_FALSE(no_room->reserved);
  EXPECT_FALSE(no_room->reservations_in_the_way);  // the cap itself has no room
  EXPECT_TRUE(ledger.reserve({"e", 1, "other", "fast", 1})->reserved);
  // A refused request id is asked again when the held ticket runs again: refused while the cap
  // has no room, reserved once it has.
  auto again = ledger.reserve({"d", 1, "acme", "fast", 1});
  EXPECT_FALSE(again->replayed);
  EXPECT_FALSE(again->reserved);
  EXPECT_EQ(again->state, redis::ReservationState::kRefused);
  EXPECT_EQ(again->exhausted_bucket, "tenant:acme:day:2026-11-22");
  ASSERT_TRUE(ledger.resetCap(BudgetScope::kTenant, "acme", BudgetPeriod::kDay).ok());
  EXPECT_TRUE(ledger.reserve({"d", 1, "acme", "fast", 1})->reserved);
}

// One id per provider request: a settled id replays its cost and the reply kept with it (a
// redelivered ticket answers from it instead of paying again); an id still reserved (a run cut
// short) is handed back reserved, to be settled once; a released id (its call failed) is a new
// request.
TEST_F(BudgetLedgerTest, ASettledIdReplaysItsReplyAndAnOpenIdIsSettledOnce) {
  BudgetLedger ledger(makePool(), budgets(1'000'000), key_prefix_, clock_);
  ASSERT_TRUE(ledger.reserve({"t-r", 1, "acme", "fast", 4'000})->reserved);
  ASSERT_TRUE(ledger.settle("t-r", 1, 2'500, R"({"content":"kept"})").ok());
  auto replay = ledger.reserve({"t-r", 1, "acme", "fast", 4'000});
  ASSERT_TRUE(replay.ok()) << replay.error().message;
  EXPECT_TRUE(replay->replayed);
  EXPECT_FALSE(replay->reserved);
  EXPECT_EQ(replay->state, redis::ReservationState::kSettled);
  EXPECT_EQ(replay->settled_actual, 2'500);
  EXPECT_EQ(replay->settled_reply, R"({"content":"kept"})");
  EXPECT_EQ(globalSettled(ledger), 2'500);  // the replay charged nothing

  ASSERT_TRUE(ledger.reserve({"t-r", 2, "acme", "fast", 4'000})->reserved);
  ASSERT_TRUE(ledger.release("t-r", 2).ok());  // the request failed before spending
  auto renewed = ledger.reserve({"t-r", 2, "acme", "fast", 4'000});
  EXPECT_TRUE(renewed->reserved);
  EXPECT_FALSE(renewed->replayed);
  ASSERT_TRUE(ledger.release("t-r", 2).ok());
  ASSERT_TRUE(ledger.reserve({"t-r", 3, "acme", "fast", 4'000})->reserved);
  auto open = ledger.reserve({"t-r", 3, "acme", "fast", 4'000});  // its run was cut short
  EXPECT_TRUE(open->reserved);
  EXPECT_TRUE(open->replayed);
  EXPECT_EQ(open->state, redis::ReservationState::kReserved);
  EXPECT_EQ(ledger.settle("t-r", 3, 1'000)->charged, 1'000);
  EXPECT_TRUE(ledger.settle("t-r", 3, 1'000)->replayed);  // charged once
  EXPECT_EQ(globalSettled(ledger), 3'500);
}

// One id, two processes: the ticket's partition moved while its call was in flight. The second
// owner waits while the first holds its lease and replays its reply; after a lapse (the first
// looked dead) it takes the reservation over, and a call the first still settles is charged on
// its own, so the ledger matches what the provider billed.
TEST_F(BudgetLedgerTest, AnOwnersLeaseMakesOthersWaitAndATakenOverCallIsStillCharged) {
  BudgetLedger ledger(makePool(), budgets(1'000'000), key_prefix_, clock_);
  const auto lease = std::chrono::milliseconds(10'000);
  BudgetRequest first{"t-o", 1, "acme", "fast", 4'000, "owner-a", lease};
  BudgetRequest second{"t-o", 1, "acme", "fast", 4'000, "owner-b", lease};
  ASSERT_TRUE(ledger.reserve(first)->reserved);
  auto waits = ledger.reserve(second);
  ASSERT_TRUE(waits.ok()) << waits.error().message;
  EXPECT_TRUE(waits->in_flight_elsewhere);
  EXPECT_FALSE(waits->reserved);
  EXPECT_EQ(waits->owner_lease_left, lease);
  // The owner settles: the waiter replays, nothing more is charged.
  ASSERT_EQ(ledger.settle("t-o", 1, 2'000, R"({"content":"a"})", "owner-a")->charged, 2'000);
  auto replay = ledger.reserve(second);
  EXPECT_EQ(replay->state, redis::ReservationState::kSettled);
  EXPECT_EQ(replay->settled_reply, R"({"content":"a"})");
  EXPECT_EQ(globalSettled(ledger), 2'000);

  // A renewed lease keeps others waiting; a lapsed one is taken over.
  ASSERT_TRUE(ledger.reserve({"t-o", 2, "acme", "fast", 4'000, "owner-a", lease})->reserved);
  clock_.advance(std::chrono::milliseconds(8'000));
  EXPECT_EQ(ledger.renewOwners({{"t-o", 2, "owner-a"}, {"t-o", 2, "owner-b"}}, lease).value(), 1);
  clock_.advance(std::chrono::milliseconds(8'000));
  EXPECT_TRUE(ledger.reserve({"t-o", 2, "acme", "fast", 4'000, "owner-b", lease})->in_flight_elsewhere);
  clock_.advance(std::chrono::milliseconds(3'000));
  auto taken = ledger.reserve({"t-o", 2, "acme", "fast", 4'000, "owner-b", lease});
  ASSERT_TRUE(taken.ok()) << taken.error().message;
  EXPECT_TRUE(taken->reserved);
  EXPECT_EQ(taken->state, redis::ReservationState::kReserved);
  // The first owner can no longer release the taker's reservation, nor renew it.
  ASSERT_TRUE(ledger.release("t-o", 2, "owner-a").ok());
  EXPECT_EQ(ledger.renewOwners({{"t-o", 2, "owner-a"}}, lease).value(), 0);
  // Both calls reached the provider: both are charged, each once.
  auto late = ledger.settle("t-o", 2, 1'500, R"({"content":"late"})", "owner-a");
  ASSERT_TRUE(late.ok()) << late.error().message;
  EXPECT_TRUE(late->overtaken);
  EXPECT_EQ(late->charged, 1'500);
  EXPECT_TRUE(ledger.settle("t-o", 2, 1'500, R"({"content":"late"})", "owner-a")->replayed);
  auto own = ledger.settle("t-o", 2, 1'200, R"({"content":"b"})", "owner-b");
  ASSERT_TRUE(own.ok()) << own.error().message;
  EXPECT_FALSE(own->overtaken);
  EXPECT_EQ(own->charged, 1'200);
  EXPECT_TRUE(ledger.settle("t-o", 2, 1'200, {}, "owner-b")->replayed);
  EXPECT_EQ(globalSettled(ledger), 2'000 + 1'500 + 1'200);
  auto rows = ledger.show();
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(find(*rows, "global", "", "day")->reserved, 0);  // nothing left held
  // The kept reply is the taker's: a later redelivery replays what the record says was settled.
  EXPECT_EQ(ledger.reserve({"t-o", 2, "acme", "fast", 4'000, "owner-c", lease})->settled_reply, R"({"content":"b"})");

  // A settle by the first owner after the taker settled is charged too.
  ASSERT_TRUE(ledger.reserve({"t-o", 3, "acme", "fast", 4'000, "owner-a", lease})->reserved);
  clock_.advance(lease + std::chrono::milliseconds(1));
  ASSERT_TRUE(ledger.reserve({"t-o", 3, "acme", "fast", 4'000, "owner-b", lease})->reserved);
  ASSERT_EQ(ledger.settle("t-o", 3, 700, {}, "owner-b")->charged, 700);
  EXPECT_TRUE(ledger.settle("t-o", 3, 900, {}, "owner-a")->overtaken);
  EXPECT_EQ(globalSettled(ledger), 2'000 + 1'500 + 1'200 + 700 + 900);
}

TEST_F(BudgetLedgerTest, SettleAboveTheRoomIsClampedAndRecorded) {
  BudgetLedger ledger(makePool(), budgets(10'000), key_prefix_, clock_);
  ASSERT_TRUE(ledger.reserve({"a", 1, "acme", "fast", 6'000})->reserved);
  ASSERT_TRUE(ledger.reserve({"b", 1, "acme", "fast", 3'000})->reserved);
  auto s = ledger.settle("a", 1, 9'000);  // room for a: 10000 - 3000 (b outstanding)
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->charged, 7'000);
  EXPECT_EQ(s->uncharged, 2'000);
  auto sb = ledger.settle("b", 1, 3'000);
  ASSERT_TRUE(sb.ok());
  EXPECT_EQ(sb->charged, 3'000);
  auto rows = ledger.show();
  ASSERT_TRUE(rows.ok());
  const auto* global = find(*rows, "global", "", "day");
  ASSERT_NE(global, nullptr);
  EXPECT_EQ(global->settled, 10'000);
  EXPECT_EQ(global->uncharged, 2'000);
}

TEST_F(BudgetLedgerTest, AReservationOfADeadWorkerExpiresAndFreesTheBudget) {
  BudgetLedger ledger(makePool(), budgets(10'000), key_prefix_, clock_);
  ASSERT_TRUE(ledger.reserve({"dead", 1, "acme", "fast", 8'000})->reserved);
  EXPECT_FALSE(ledger.reserve({"next", 1, "acme", "fast", 8'000})->reserved);
  clock_.advance(std::chrono::seconds(61));
  EXPECT_TRUE(ledger.reserve({"next", 2, "acme", "fast", 8'000})->reserved);
  // The slow worker comes back after expiry: its call did happen, so it is charged within room.
  auto late = ledger.settle("dead", 1, 5'000);
  ASSERT_TRUE(late.ok());
  EXPECT_EQ(late->charged, 2'000);
  EXPECT_EQ(late->uncharged, 3'000);
}

TEST_F(BudgetLedgerTest, FailsClosedWhileRedisIsDownAndRecoversAfterRestart) {
  BudgetLedger ledger(makePool(), budgets(10'000), key_prefix_, clock_);
  ASSERT_TRUE(ledger.reserve({"a", 1, "acme", "fast", 1'000})->reserved);
  server().stop(/*crash=*/true);
  auto down = ledger.reserve({"b", 1, "acme", "fast", 1'000});
  ASSERT_FALSE(down.ok());
  EXPECT_TRUE(down.error().retriable);
  server().restart();  // memory-only server: the ledger starts empty again
  Result<redis::ReserveResult> up = Error::unavailable("not tried");
  for (int i = 0; i < 100 && !up.ok(); ++i) {
    up = ledger.reserve({"b", 1, "acme", "fast", 1'000});
    if (!up.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(up.ok()) << up.error().message;
  EXPECT_TRUE(up->reserved);
}

TEST_F(BudgetLedgerTest, ARestartMidRunOnlyEverGivesRetriableErrors) {
  BudgetLedger ledger(makePool(8), budgets(1'000'000'000), key_prefix_, clock_);
  std::atomic<bool> stop{false};
  std::atomic<long long> ok{0}, retriable{0}, fatal{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < 4; ++t) {
    workers.emplace_back([&, t] {
      for (int i = 0; !stop; ++i) {
        const std::string id = "mid-" + std::to_string(t) + "-" + std::to_string(i);
        auto r = ledger.reserve({id, 1, "acme", "fast", 10});
        if (!r) {
          ++(r.error().retriable ? retriable : fatal);
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
          continue;
        }
        auto s = ledger.settle(id, 1, 5);
        // A restart between reserve and settle loses the reservation (memory-only server): the
        // settle then says not-found, which the tier treats as "reserve again".
        if (s)
          ++ok;
        else if (s.error().retriable)
          ++retriable;
        else if (s.error().code != ErrorCode::kNotFound)
          ++fatal;
      }
    });
  }
  const auto wait_for_progress = [&](long long above) {
    for (int i = 0; i < 200 && ok.load() <= above; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  };
  wait_for_progress(50);
  server().stop(/*crash=*/true);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  server().restart();
  const long long before = ok.load();
  wait_for_progress(before + 50);
  stop = true;
  for (auto& w : workers) w.join();
  EXPECT_EQ(fatal, 0);
  EXPECT_GT(retriable, 0);
  EXPECT_GT(ok.load(), before + 50) << "operations resume after the restart";
}

// One worker's share of the exactness test: deterministic from its seed, so running it twice
// replays exactly the same operations (a redelivery of every ticket). On the replay a settled
// id answers as a replay (its reply stands in for the call: nothing is settled again); an id
// that was released or refused is a new request and goes through reserve and settle again.
struct WorkerTotals {
  long long charged = 0;
  long long ops = 0;
  long long errors = 0;
  long long replays = 0;
  long long settles = 0;  // settles that charged (not replays)
};

WorkerTotals runLedgerWorker(BudgetLedger& ledger, int process, int thread, int tickets, bool replay) {
  WorkerTotals t;
  std::mt19937_64 rng(static_cast<std::uint64_t>(process * 1000 + thread));
  std::uniform_int_distribution<MicroUsd> cost(1, 20'000);
  std::uniform_int_distribution<int> pick(0, 9);
  for (int i = 0; i < tickets; ++i) {
    const std::string id = "p" + std::to_string(process) + "-t" + std::to_string(thread) + "-" + std::to_string(i);
    const MicroUsd estimate = cost(rng);
    const int what = pick(rng);
    const MicroUsd actual = what == 0 ? estimate + cost(rng) : estimate * pick(rng) / 9;  // sometimes above
    auto r =
        ledger.reserve({id, 1, "tenant-" + std::to_string(thread % 3), thread % 2 ? "fast" : "frontier", estimate});
    ++t.ops;
    if (!r) {
      ++t.errors;
      continue;
    }
    if (r->replayed) ++t.replays;
    if (r->replayed && !replay) ++t.errors;  // a first run replays nothing
    if (replay && r->state == redis::ReservationState::kSettled && !r->replayed)
      ++t.errors;                                                                 // a settled id always replays
    if (r->state == redis::ReservationState::kSettled || !r->reserved) continue;  // replayed answer, or no room
    if (what >= 8) {
      if (!ledger.release(id, 1)) ++t.errors;
    } else {
      auto s = ledger.settle(id, 1, actual);
      if (!s) {
        if (s.error().code != ErrorCode::kNotFound) ++t.errors;  // replay of a released one
      } else if (!s->replayed) {
        t.charged += s->charged;
        ++t.settles;
      }
    }
    ++t.ops;
  }
  return t;
}

WorkerTotals runProcesses(int port, const std::string& prefix, const BudgetsConfig& config,
                          std::chrono::system_clock::time_point wall, int processes, int threads, int tickets,
                          bool replay) {
  std::vector<std::pair<pid_t, int>> children;
  for (int p = 0; p < processes; ++p) {
    int fds[2];
    if (pipe(fds) != 0) return {};
    const pid_t pid = fork();
    if (pid == 0) {
      close(fds[0]);
      redis::RedisPoolOptions options;
      options.endpoint.port = port;
      options.pool_size = threads;
      options.command_timeout = std::chrono::seconds(10);
      ManualClock clock;
      clock.setWall(wall);
      BudgetLedger ledger(std::make_shared<redis::RedisPool>(options), config, prefix, clock);
      std::vector<WorkerTotals> totals(static_cast<std::size_t>(threads));
      std::vector<std::thread> pool;
      for (int t = 0; t < threads; ++t)
        pool.emplace_back(
            [&, t] { totals[static_cast<std::size_t>(t)] = runLedgerWorker(ledger, p, t, tickets, replay); });
      for (auto& th : pool) th.join();
      WorkerTotals sum;
      for (const auto& w : totals) {
        sum.charged += w.charged;
        sum.ops += w.ops;
        sum.errors += w.errors;
        sum.replays += w.replays;
        sum.settles += w.settles;
      }
      const bool ok = write(fds[1], &sum, sizeof sum) == static_cast<ssize_t>(sizeof sum);
      _exit(ok ? 0 : 1);
    }
    close(fds[1]);
    children.emplace_back(pid, fds[0]);
  }
  WorkerTotals all;
  for (auto& [pid, fd] : children) {
    WorkerTotals w;
    const bool got = read(fd, &w, sizeof w) == static_cast<ssize_t>(sizeof w);
    close(fd);
    int status = 0;
    waitpid(pid, &status, 0);
    if (!got || !WIFEXITED(status) || WEXITSTATUS(status) != 0) ++all.errors;
    all.charged += w.charged;
    all.ops += w.ops;
    all.errors += w.errors;
    all.replays += w.replays;
    all.settles += w.settles;
  }
  return all;
}

TEST_F(BudgetLedgerTest, ConcurrentProcessesNeverOverspendAndReplayChangesNothing) {
  constexpr MicroUsd kCap = 50'000'000;
  const auto config = budgets(kCap);
  constexpr int kProcesses = 8, kThreads = 16, kTickets = 80;  // ~20,000 operations
  const auto first =
      runProcesses(server().port(), key_prefix_, config, clock_.now(), kProcesses, kThreads, kTickets, false);
  EXPECT_EQ(first.errors, 0);
  EXPECT_EQ(first.replays, 0);
  EXPECT_GE(first.ops, 19'000);

  BudgetLedger ledger(makePool(), config, key_prefix_, clock_);
  auto rows = ledger.show();
  ASSERT_TRUE(rows.ok()) << rows.error().message;
  const auto* global = find(*rows, "global", "", "day");
  ASSERT_NE(global, nullptr);
  EXPECT_EQ(global->settled, first.charged);
  EXPECT_LE(global->settled, kCap);
  EXPECT_GT(global->settled, kCap * 9 / 10);  // the cap was reached: the test exercised refusal
  EXPECT_EQ(global->reserved, 0);
  const auto* month = find(*rows, "global", "", "month");
  ASSERT_NE(month, nullptr);
  EXPECT_EQ(month->settled, first.charged);
  auto audit_len = connect()->command({"XLEN", ledger.auditStreamKey()});
  ASSERT_TRUE(audit_len.ok());

  const auto replay =
      runProcesses(server().port(), key_prefix_, config, clock_.now(), kProcesses, kThreads, kTickets, true);
  EXPECT_EQ(replay.errors, 0);
  EXPECT_GE(replay.replays, first.settles);  // every settled id replayed, charging nothing
  auto after = ledger.show();
  ASSERT_TRUE(after.ok());
  const auto* global_after = find(*after, "global", "", "day");
  ASSERT_NE(global_after, nullptr);
  // Only requests that were never charged (released or refused the first time) add spend.
  EXPECT_EQ(global_after->settled, first.charged + replay.charged);
  EXPECT_LE(global_after->settled, kCap);
  EXPECT_EQ(global_after->reserved, 0);
  auto audit_after = connect()->command({"XLEN", ledger.auditStreamKey()});
  EXPECT_EQ(audit_after->integer, audit_len->integer + replay.settles);  // no settle was appended twice
}

}  // namespace
}  // namespace ticketflow
