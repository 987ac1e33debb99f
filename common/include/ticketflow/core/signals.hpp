#pragma once
// SIGTERM/SIGINT handling without async-signal-unsafe handlers: main() blocks the signals
// before any thread starts (threads inherit the mask), and a waiter collects them synchronously.

#include <chrono>
#include <optional>

namespace ticketflow {

// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread; call first thing in main().
void blockTerminationSignals();

// Waits up to `timeout` for a blocked termination signal; returns it, or nullopt on timeout.
std::optional<int> waitForTerminationSignal(std::chrono::milliseconds timeout);

}  // namespace ticketflow
