#pragma once
// Which sinks already have a ticket update, so that a redelivered or repeated result writes
// nowhere twice (the result writer's idempotency, docs/pipeline.md). One Redis hash per (tenant,
// ticket, revision): a field per sink once written (its time), and "pending:<sink>" while a
// write is begun (a mark the writer chooses: when, and for the updates topic where). Every call
// rides a CommandBatcher's shared round trips; pending and written marks renew the hash's TTL.
//
// Threading: thread-safe. read() and markWritten() never block; markPending() waits for Redis,
// so never call it from a read() callback (the batcher's thread).

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ticketflow/core/result.hpp"
#include "ticketflow/redis/batcher.hpp"
#include "ticketflow/redis/pool.hpp"

namespace ticketflow::redis {

// What the result writer needs from its markers store: an interface, so the role can be tested
// against a fake (tests/fixtures/written_markers_fake.hpp) as well as against Redis.
class WrittenMarkers {
 public:
  using Marks = std::map<std::string, std::string>;  // field -> value
  static constexpr const char* kPendingPrefix = "pending:";

  virtual ~WrittenMarkers() = default;
  // The hash of one update, (tenant, ticket, revision).
  virtual std::string keyFor(const std::string& tenant, const std::string& ticket_id, std::int64_t revision) const = 0;
  // The hash's fields. Errors are outages of cause "redis" (the caller holds the update).
  virtual void read(const std::string& key, std::function<void(Result<Marks>)> done) = 0;
  // Stores `pending` (field -> mark) and renews the TTL; returns once the store has them, so the
  // writes they announce begin only after. An empty list only renews the TTL.
  virtual Status markPending(const std::string& key,
                             const std::vector<std::pair<std::string, std::string>>& pending) = 0;
  // Marks `sinks` written at `at`. Fire and forget: a lost mark can only repeat a write that the
  // sinks recognise. A later read() sees it.
  virtual void markWritten(const std::string& key, const std::vector<std::string>& sinks, const std::string& at) = 0;
};

class RedisWrittenMarkers final : public WrittenMarkers {
 public:
  RedisWrittenMarkers(std::shared_ptr<RedisPool> pool, std::string key_prefix, std::int64_t ttl_s);

  std::string keyFor(const std::string& tenant, const std::string& ticket_id, std::int64_t revision) const override;
  void read(const std::string& key, std::function<void(Result<Marks>)> done) override;
  Status markPending(const std::string& key, const std::vector<std::pair<std::string, std::string>>& pending) override;
  // A later read() sees it: the batcher keeps submission order.
  void markWritten(const std::string& key, const std::vector<std::string>& sinks, const std::string& at) override;

 private:
  const std::string key_prefix_;
  const std::string ttl_s_;
  CommandBatcher batcher_;
};

}  // namespace ticketflow::redis
