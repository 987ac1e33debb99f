#pragma once
// The per-process HTTP endpoint: /metrics (Prometheus text), /healthz (the process is alive)
// and /readyz (connected to Kafka and Redis, assignment received, not draining — as reported by
// the readiness callback). Port from observability.http_port; 0 picks a free port.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ticketflow/http/server.hpp"
#include "ticketflow/observability/metrics.hpp"

namespace ticketflow::observability {

struct Readiness {
  bool ready = false;
  std::vector<std::string> reasons;  // why not, e.g. "no partitions assigned", "draining"
};

class ObservabilityEndpoint {
 public:
  ObservabilityEndpoint(int port, const MetricsRegistry& metrics, std::function<Readiness()> readiness,
                        const std::string& host = "0.0.0.0");
  int port() const { return server_->port(); }

 private:
  const MetricsRegistry& metrics_;
  std::function<Readiness()> readiness_;
  std::unique_ptr<http::HttpServer> server_;
};

}  // namespace ticketflow::observability
