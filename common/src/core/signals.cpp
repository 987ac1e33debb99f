#include "ticketflow/core/signals.hpp"

#include <csignal>
#include <cstdlib>
#include <ctime>
#include <thread>

#include <unistd.h>

namespace ticketflow {
namespace {
sigset_t terminationSet() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}
}  // namespace

void blockTerminationSignals() {
  const sigset_t set = terminationSet();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

std::optional<int> waitForTerminationSignal(std::chrono::milliseconds timeout) {
  const sigset_t set = terminationSet();
  timespec ts{static_cast<time_t>(timeout.count() / 1000), static_cast<long>((timeout.count() % 1000) * 1000000)};
  const int sig = sigtimedwait(&set, nullptr, &ts);
  if (sig > 0) return sig;
  return std::nullopt;
}

void exitOnTerminationSignal(const std::string& who) {
  std::thread([who] {
    const sigset_t set = terminationSet();
    int sig = 0;
    while (sigwait(&set, &sig) != 0) {
    }
    const char* name = sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "SIGHUP";
    const std::string line = "\n" + who + ": interrupted by " + name + "\n";
    (void)!::write(STDERR_FILENO, line.data(), line.size());
    std::_Exit(128 + sig);
  }).detach();
}

}  // namespace ticketflow
