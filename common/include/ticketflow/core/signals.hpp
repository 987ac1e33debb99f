#pragma once
// SIGTERM/SIGINT handling without async-signal-unsafe handlers: main() blocks the signals
// before any thread starts (threads inherit the mask), and a waiter collects them synchronously.

#include <chrono>
#include <optional>
#include <string>

namespace ticketflow {

// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread; call first thing in main().
void blockTerminationSignals();

// Waits up to `timeout` for a blocked termination signal; returns it, or nullopt on timeout.
std::optional<int> waitForTerminationSignal(std::chrono::milliseconds timeout);

// For a command that ends by itself (config check, submit, triage, eval): a thread that waits for
// a termination signal and then ends the process at once, exit status 128 + the signal, after
// printing "`who`: interrupted by SIGxxx". Work already written stays written (triage's resume
// file is flushed line by line).
void exitOnTerminationSignal(const std::string& who);

}  // namespace ticketflow
