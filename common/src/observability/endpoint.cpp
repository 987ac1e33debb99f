#include "ticketflow/observability/endpoint.hpp"

#include <nlohmann/json.hpp>

namespace ticketflow::observability {

ObservabilityEndpoint::ObservabilityEndpoint(int port, const MetricsRegistry& metrics,
                                             std::function<Readiness()> readiness, const std::string& host)
    : metrics_(metrics), readiness_(std::move(readiness)) {
  http::HttpServerOptions options;
  options.host = host;
  options.port = port;
  options.max_threads = 4;
  server_ = std::make_unique<http::HttpServer>(options, [this](const http::HttpRequest& req) -> http::HttpResponse {
    if (req.method != "GET") return {405, {}, R"({"error":"GET only"})"};
    if (req.path == "/metrics") {
      http::HttpResponse r{200, {}, metrics_.render()};
      r.content_type = "text/plain; version=0.0.4; charset=utf-8";
      return r;
    }
    if (req.path == "/healthz") return {200, {}, R"({"status":"alive"})"};
    if (req.path == "/readyz") {
      const Readiness state = readiness_();
      nlohmann::json body = {{"ready", state.ready}, {"reasons", state.reasons}};
      return {state.ready ? 200 : 503, {}, body.dump()};
    }
    return {404, {}, R"({"error":"not found; try /metrics, /healthz, /readyz"})"};
  });
}

}  // namespace ticketflow::observability
