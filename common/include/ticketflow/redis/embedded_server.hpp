#pragma once
// A private redis-server (the Debian package) on a free loopback port in a temporary folder,
// for the demo, the laptop setup and the tests. Memory-only by default; with `append_only` it
// keeps an append-only file (fsync every write) in its folder, so a stop and restart() keeps the
// data, as a production ledger's Redis must. Stopped and its folder removed on destruction.

#include <memory>
#include <string>

#include "ticketflow/core/process.hpp"

namespace ticketflow::redis {

class EmbeddedRedisServer {
 public:
  // Starts the server and waits until it answers PING. Throws std::runtime_error naming the
  // fix (install redis-server) if it cannot.
  explicit EmbeddedRedisServer(bool append_only = false);
  ~EmbeddedRedisServer();
  EmbeddedRedisServer(const EmbeddedRedisServer&) = delete;
  EmbeddedRedisServer& operator=(const EmbeddedRedisServer&) = delete;

  int port() const { return port_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_) + "/0"; }
  // Stops the server (SIGKILL when `crash`), keeping the port for restart().
  void stop(bool crash = false);
  void restart();

 private:
  void start();
  std::string dir_;
  bool append_only_ = false;
  int port_ = 0;
  std::unique_ptr<ChildProcess> process_;
};

}  // namespace ticketflow::redis
