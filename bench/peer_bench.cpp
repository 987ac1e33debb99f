// The peer phase of `ticketflow bench pipeline`: the Portkey AI gateway, started as shipped
// (`node build/start-server.js --port=N --headless`) but bound to 127.0.0.1, proxies the tier
// pools' requests to the simulator; a load generator here sends them with keep-alive.
#include "peer_bench.hpp"

#include <algorithm>
#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <mutex>
#include <ostream>
#include <sstream>
#include <thread>
#include <vector>

#include "bench_tickets.hpp"
#include "ticketflow/core/json_parse.hpp"
#include "ticketflow/core/process.hpp"
#include "ticketflow/core/process_stats.hpp"
#include "ticketflow/core/stats.hpp"
#include "ticketflow/http/client.hpp"
#include "ticketflow/provider/model_client.hpp"
#include "ticketflow/provider/prompt.hpp"

namespace ticketflow::app {
namespace {

using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

constexpr const char* kDefaultGateway = ".tools/node_modules/@portkey-ai/gateway/build/start-server.js";

// The gateway passes no host to listen() (all interfaces) and has no flag or variable for one:
// this preload makes a listen() without a host listen on 127.0.0.1. Nothing else changes.
constexpr const char* kLoopbackPreload = R"(const net = require('node:net');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (port, host, ...rest) {
  if (typeof port === 'number' && (host === undefined || typeof host === 'function'))
    return listen.call(this, port, '127.0.0.1', ...(typeof host === 'function' ? [host] : []), ...rest);
  return listen.apply(this, arguments);
};
)";

// Whether something listens on 127.0.0.1:`port` and nothing on another address of that port.
bool listensOnLoopbackOnly(int port) {
  bool loopback = false, other = false;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // the header
    while (std::getline(in, line)) {
      std::istringstream f(line);
      std::string slot, local, remote, state;
      f >> slot >> local >> remote >> state;
      const auto colon = local.rfind(':');
      if (state != "0A" || colon == std::string::npos) continue;  // 0A: LISTEN
      if (std::stoi(local.substr(colon + 1), nullptr, 16) != port) continue;
      (local.substr(0, colon) == "0100007F" ? loopback : other) = true;
    }
  }
  return loopback && !other;
}

// The request a tier pool sends for each bench ticket (its first tier's first OpenAI-protocol
// model, the specialists in turn), addressed to the gateway with Portkey's routing headers.
std::vector<http::ClientRequest> peerRequests(const Config& config, const PeerBenchOptions& o,
                                              const std::string& gateway_url) {
  const ModelConfig* model = nullptr;
  for (const auto& tier : config.tiers)
    for (const auto& name : tier.models) {
      const ModelConfig* m = config.findModel(name);
      const ProviderConfig* p = m ? config.findProvider(m->provider) : nullptr;
      if (!model && p && p->api == ProviderApi::kOpenAi) model = m;
    }
  if (!model) throw std::runtime_error("bench pipeline: no tier model speaks the OpenAI protocol");
  ProviderConfig via;
  via.base_url = gateway_url + "/v1";
  via.headers = {{"x-portkey-provider", "openai"}, {"x-portkey-custom-host", o.upstream_url + "/v1"}};
  const auto prompts = provider::PromptSet::builtin();
  std::vector<std::string> categories;
  for (const auto& [category, text] : prompts.specialists) categories.push_back(category);
  std::vector<http::ClientRequest> out;
  for (const auto& t : benchTickets("P-", 328)) {
    const auto& category = categories[out.size() % categories.size()];
    out.push_back(provider::buildOpenAiRequest(via, *model, provider::buildModelRequest(prompts, t, category, *model),
                                               o.api_key));
  }
  return out;
}

struct LoadResult {
  std::int64_t ok = 0;
  std::int64_t failed = 0;
  std::vector<double> latencies_ms;
  std::string first_error;
  double seconds = 0;
};

// Sends `count` requests from `threads` threads, each as soon as its previous one is answered,
// or, with `rate` > 0, each at its slot of a fixed rate. Stops early after 20 failures.
LoadResult sendRequests(http::HttpClient& client, const std::vector<http::ClientRequest>& requests, int count,
                        int threads, int rate) {
  std::atomic<int> next{0};
  std::mutex mutex;
  LoadResult r;
  const auto t0 = Steady::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      for (int i; (i = next.fetch_add(1)) < count;) {
        if (rate > 0) std::this_thread::sleep_until(t0 + std::chrono::microseconds(std::int64_t{i} * 1'000'000 / rate));
        const auto sent = Steady::now();
        auto response = client.send(requests[static_cast<std::size_t>(i) % requests.size()]);
        const double ms = std::chrono::duration<double, std::milli>(Steady::now() - sent).count();
        std::lock_guard lock(mutex);
        if (response && response->status == 200) {
          ++r.ok;
          r.latencies_ms.push_back(ms);
          continue;
        }
        if (r.first_error.empty())
          r.first_error = response ? "HTTP " + std::to_string(response->status) + ": " + response->body.substr(0, 200)
                                   : response.error().message;
        if (++r.failed >= 20) next = count;
      }
    });
  for (auto& t : pool) t.join();
  r.seconds = std::chrono::duration<double>(Steady::now() - t0).count();
  return r;
}

std::string firstLineOf(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// The last line of `path` that is not blank, cut to 200 characters.
std::string lastLineOf(const std::string& path) {
  std::ifstream in(path);
  std::string last;
  for (std::string line; std::getline(in, line);)
    if (line.find_first_not_of(" \t\r") != std::string::npos) last = line;
  return last.substr(0, 200);
}

}  // namespace

std::string defaultPeerGateway() {
  return std::filesystem::exists(kDefaultGateway) ? std::filesystem::absolute(kDefaultGateway).string() : "";
}

void runPeerBench(const Config& config, const PeerBenchOptions& o, std::ostream& out) {
  const std::string node = findProgram("node");
  if (o.gateway_script.empty() || !std::filesystem::exists(o.gateway_script) || node.empty()) {
    out << "  peer: skipped, "
        << (node.empty()               ? "no node in PATH"
            : o.gateway_script.empty() ? "no " + std::string(kDefaultGateway)
                                       : "no " + o.gateway_script)
        << " (install it with scripts/bootstrap --test-tools, or name it with --peer-gateway)\n"
        << std::flush;
    return;
  }
  const std::filesystem::path script = std::filesystem::absolute(o.gateway_script);
  std::string version = "?";
  {
    std::ifstream in(script.parent_path().parent_path() / "package.json");
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (auto doc = parseJsonText(text); doc && doc->is_object()) version = doc->value("version", "?");
  }
  std::string node_version = "?";
  {
    ChildProcess v({node, "--version"}, o.dir + "/node-version");
    if (v.wait(10s) == 0) node_version = firstLineOf(o.dir + "/node-version");
  }
  {
    std::ofstream preload(o.dir + "/loopback.cjs");
    preload << kLoopbackPreload;
  }
  const int port = freeLoopbackPort();
  const std::string log = o.dir + "/peer-gateway.log";
  // Proxy variables unset: the gateway would send its upstream calls through one.
  ChildProcess gateway(
      {"env", "-u", "HTTP_PROXY", "-u", "HTTPS_PROXY", "-u", "http_proxy", "-u", "https_proxy", node, "--require",
       o.dir + "/loopback.cjs", script.string(), "--port=" + std::to_string(port), "--headless"},
      log);
  const std::string url = "http://127.0.0.1:" + std::to_string(port);
  http::HttpClientOptions client_options;
  client_options.connect_timeout = 2000ms;
  client_options.read_timeout = 10000ms;
  client_options.total_timeout = 15000ms;
  const int paced_threads = std::max(o.concurrency, 8);  // the latency run: a slow answer must not hold up the rate
  client_options.max_connections = paced_threads;
  http::HttpClient client(client_options);
  bool answering = false;
  http::ClientRequest ping;
  ping.method = "GET";
  ping.url = url + "/";
  for (const auto deadline = Steady::now() + 30s; !answering && gateway.running() && Steady::now() < deadline;) {
    auto r = client.send(ping);
    answering = r && r->status == 200;
    if (!answering) std::this_thread::sleep_for(100ms);
  }
  if (!answering) {
    const bool running = gateway.running();
    const std::string last = lastLineOf(log);
    out << "  peer: skipped, the gateway " << (running ? "did not answer on " + url + " within 30 s" : "exited")
        << "; its last output: " << (last.empty() ? "(none)" : last) << "\n"
        << std::flush;
    return;
  }
  // It answers before its start-up banner ends (a spinner for a second, then "Ready for
  // connections!"): that output and its timer must not land in the measured run.
  for (const auto deadline = Steady::now() + 5s; Steady::now() < deadline; std::this_thread::sleep_for(50ms)) {
    std::ifstream in(log);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (text.find("Ready for connections") != std::string::npos) break;
  }
  // Network benches stay on loopback: a gateway that listens anywhere else is stopped unmeasured.
  if (!listensOnLoopbackOnly(port)) {
    out << "  peer: skipped, the gateway listens on more than 127.0.0.1:" << port << " (the preload did not hold)\n"
        << std::flush;
    return;
  }
  const auto requests = peerRequests(config, o, url);
  const auto warm = sendRequests(client, requests, 200, o.concurrency, 0);
  if (warm.failed > 0) {
    out << "  peer: skipped, " << warm.failed << " of the warm-up's requests failed: " << warm.first_error << "\n"
        << std::flush;
    return;
  }
  const auto log_before = std::filesystem::file_size(log);
  const double cpu_before = processCpuSeconds(gateway.pid());
  const auto run = sendRequests(client, requests, o.requests, o.concurrency, 0);
  const double cpu_after = processCpuSeconds(gateway.pid());
  if (cpu_before < 0 || cpu_after < 0) {
    out << "  peer: skipped, the gateway's /proc/" << gateway.pid() << "/stat could not be read\n" << std::flush;
    return;
  }
  const double cpu_ms = (cpu_after - cpu_before) * 1000;
  const auto log_bytes = std::filesystem::file_size(log) - log_before;
  const double per_request = run.ok > 0 ? cpu_ms / static_cast<double>(run.ok) : 0;
  out << std::fixed << std::setprecision(2) << "  peer: Portkey gateway " << per_request
      << " CPU-ms per proxied request (" << run.ok << " requests, concurrency " << o.concurrency << ", "
      << std::setprecision(0) << static_cast<double>(run.ok) / run.seconds << "/s); ratio pipeline/peer "
      << std::setprecision(2) << (per_request > 0 ? o.pipeline_cpu_ms_per_ticket / per_request : 0) << " (pipeline "
      << std::setprecision(3) << o.pipeline_cpu_ms_per_ticket << " CPU-ms per ticket; target <= 0.30)\n"
      << "        @portkey-ai/gateway " << version << " on node " << node_version << ", --headless, "
      << "listening on 127.0.0.1 only (a preload sets the address; it has no option for one); " << log_bytes
      << " bytes of stdout/stderr during the run" << (log_bytes == 0 ? " (no line per request)" : "") << "\n";
  if (run.failed > 0) out << "        " << run.failed << " requests failed, the first: " << run.first_error << "\n";
  if (o.rate > 0 && o.seconds > 0) {
    const auto paced = sendRequests(client, requests, o.rate * o.seconds, paced_threads, o.rate);
    out << std::setprecision(1) << "  peer at " << o.rate << " requests/s for " << o.seconds
        << " s: request to response p50 " << percentile(paced.latencies_ms, 0.50) << " ms, p99 "
        << percentile(paced.latencies_ms, 0.99) << " ms (" << paced.ok << " of " << o.rate * o.seconds
        << " answered)\n";
  }
  out << std::flush;
  (void)gateway.stop(SIGTERM, 2s);
}

}  // namespace ticketflow::app
