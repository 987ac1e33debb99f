#pragma once
// The peer `bench pipeline` is measured against (issue 22, item 7): the Portkey AI gateway (npm
// @portkey-ai/gateway, installed into .tools/ by `scripts/bootstrap --test-tools`) proxying the
// tier pools' Chat Completions requests to the same simulator. Its CPU per proxied request is
// read from /proc/<pid>/stat, next to the pipeline's CPU per ticket.
#include <iosfwd>
#include <string>

#include "ticketflow/config/config.hpp"

namespace ticketflow::app {

struct PeerBenchOptions {
  std::string gateway_script;  // the gateway's start script (build/start-server.js)
  std::string upstream_url;    // the simulator, "http://127.0.0.1:PORT"
  std::string api_key;         // sent as "Authorization: Bearer", as the tier pools send it
  std::string dir;             // scratch folder: the gateway's log and its loopback preload
  int requests = 3000;         // the measured run (after a warm-up of 200)
  int concurrency = 4;         // load generator threads, one keep-alive connection each
  int rate = 0;                // latency run: requests per second for `seconds` (0: none)
  int seconds = 0;
  double pipeline_cpu_ms_per_ticket = 0;  // from the backlog phase, for the ratio
};

// The start script under .tools/ in the current directory if it is installed there, else "".
std::string defaultPeerGateway();

// Starts the gateway, loads it, stops it, and prints its lines to `out`. When node or the
// gateway is missing, or the gateway does not answer, prints one line saying so and returns.
void runPeerBench(const Config& config, const PeerBenchOptions& options, std::ostream& out);

}  // namespace ticketflow::app
