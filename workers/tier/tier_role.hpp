#pragma once
// The tier pool role on the stage engine: consumes <tier_prefix><tier>, runs the TierService on
// a bounded pool of call threads (model calls block on HTTP; the pool is sized by the tier's
// model concurrency so hundreds of calls are in flight without a thread per message beyond that
// bound), and produces the result to the results topic, or the escalated ticket to the next
// tier's topic. Malformed input is dead-lettered at once by the engine.

#include <memory>
#include <string>

#include "ticketflow/config/config.hpp"
#include "ticketflow/core/worker_pool.hpp"
#include "ticketflow/stage/stage.hpp"
#include "tier_service.hpp"

namespace ticketflow::tier {

class TierRole {
 public:
  TierRole(const Config& config, TierService& service, int call_threads, const Clock& clock = SystemClock::instance());
  stage::Handler handler();

 private:
  void handle(const stage::Delivery& delivery, const stage::Completion& completion);

  const Config& config_;
  TierService& service_;
  const Clock& clock_;
  WorkerPool calls_;
};

// The call threads a tier needs: the largest max_concurrency of its models (64 when unset),
// capped at 512.
int callThreadsFor(const Config& config, const std::string& tier);

}  // namespace ticketflow::tier
