#pragma once
// Child processes we start ourselves (a private redis-server, the broker in tests), owned RAII:
// the destructor stops the child (SIGTERM, then SIGKILL after a grace period) and reaps it.
// A child also gets SIGTERM when the thread that started it ends, our SIGKILL included
// (PR_SET_PDEATHSIG), so a killed demo or test leaves no redis-server or broker behind: start
// children from a thread that outlives them (every caller starts them from main or a test).

#include <chrono>
#include <string>
#include <vector>

#include <sys/types.h>

namespace ticketflow {

class ChildProcess {
 public:
  // Starts `argv[0]` (looked up in PATH) with the arguments. stdout/stderr go to `log_path`
  // if given, else are inherited. Throws std::runtime_error if it cannot start.
  ChildProcess(const std::vector<std::string>& argv, const std::string& log_path = "");
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  // Sends `signal`; with SIGTERM, waits up to `grace` then SIGKILLs. Returns the exit status
  // (as from waitpid) or -1 if it was already reaped.
  int stop(int signal, std::chrono::milliseconds grace = std::chrono::seconds(5));
  // Waits up to `timeout` for the child to exit by itself; returns its exit code or -1.
  int wait(std::chrono::milliseconds timeout);

 private:
  pid_t pid_ = -1;
  int status_ = -1;
};

// The first line of `path` once a child wrote it (a bootstrap address, a port), waiting up to
// `timeout`. Throws std::runtime_error if `owner` exits first or the time runs out.
std::string waitForFirstLine(const std::string& path, ChildProcess& owner,
                             std::chrono::milliseconds timeout = std::chrono::seconds(20));

// A TCP port on 127.0.0.1 that was free a moment ago.
int freeLoopbackPort();

// Absolute path of `program` in PATH (or the usual sbin folders), or "".
std::string findProgram(const std::string& program);

}  // namespace ticketflow
