#include "ticketflow/core/process.hpp"

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace ticketflow {

ChildProcess::ChildProcess(const std::vector<std::string>& argv, const std::string& log_path) {
  const std::string program = findProgram(argv.at(0));
  if (program.empty()) throw std::runtime_error(argv[0] + " not found in PATH (run scripts/bootstrap)");
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  // The child reports a failed exec through this pipe (closed by a successful one).
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) throw std::runtime_error("cannot start " + program + ": no pipe");
  const pid_t parent = getpid();
  pid_ = fork();
  if (pid_ < 0) {
    close(report[0]);
    close(report[1]);
    throw std::runtime_error("cannot start " + program + ": fork failed");
  }
  if (pid_ == 0) {  // the child: async-signal-safe calls only, until exec
    close(report[0]);
    int error = 0;
    // Dies with us, even when we are SIGKILLed: no private redis-server or broker is orphaned.
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent) _exit(127);
    if (!log_path.empty()) {
      const int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0) error = errno;
      if (fd > 2) close(fd);
    }
    // The child must not inherit our blocked termination signals, or SIGTERM would not stop it.
    sigset_t empty;
    sigemptyset(&empty);
    sigprocmask(SIG_SETMASK, &empty, nullptr);
    if (error == 0) {
      execve(program.c_str(), cargv.data(), environ);
      error = errno;
    }
    (void)!write(report[1], &error, sizeof error);
    _exit(127);
  }
  close(report[1]);
  int error = 0;
  ssize_t got;
  do {
    got = read(report[0], &error, sizeof error);
  } while (got < 0 && errno == EINTR);
  close(report[0]);
  if (got == static_cast<ssize_t>(sizeof error)) {
    waitpid(pid_, &status_, 0);
    pid_ = -1;
    throw std::runtime_error("cannot start " + program + ": error " + std::to_string(error));
  }
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0) stop(SIGTERM);
}

bool ChildProcess::running() {
  if (pid_ <= 0) return false;
  if (waitpid(pid_, &status_, WNOHANG) == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

int ChildProcess::wait(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (running()) {
    if (std::chrono::steady_clock::now() >= deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
}

int ChildProcess::stop(int signal, std::chrono::milliseconds grace) {
  if (pid_ <= 0) return -1;
  kill(pid_, signal);
  if (wait(grace) < 0 && pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, &status_, 0);
    pid_ = -1;
  }
  return status_;
}

std::string waitForFirstLine(const std::string& path, ChildProcess& owner, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!std::filesystem::exists(path)) {
    if (!owner.running() || std::chrono::steady_clock::now() > deadline)
      throw std::runtime_error("a helper process did not start (no " + path + ")");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

int freeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    throw std::runtime_error("cannot find a free loopback port");
  }
  close(fd);
  return ntohs(addr.sin_port);
}

std::string findProgram(const std::string& program) {
  if (program.find('/') != std::string::npos) return std::filesystem::exists(program) ? program : "";
  std::string path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  if (const char* env = std::getenv("PATH")) path = std::string(env) + ":" + path;
  std::size_t start = 0;
  while (start <= path.size()) {
    const std::size_t end = path.find(':', start);
    const std::string dir = path.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (!dir.empty()) {
      const auto candidate = std::filesystem::path(dir) / program;
      if (access(candidate.c_str(), X_OK) == 0) return candidate.string();
    }
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return "";
}

}  // namespace ticketflow
