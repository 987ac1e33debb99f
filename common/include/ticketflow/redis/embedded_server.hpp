#pragma once
// A private redis-server (the Debian package) on a free loopback port in a temporary folder,
// for the demo, the laptop setup and the tests. Memory-only by default; with `append_only` it
// keeps an append-only file (fsync every write) in its folder, so a stop and restart() keeps the
// data, as a production ledger's Redis must. With `tls` it serves TLS only (as a managed Redis
// does); `extra_args` add redis-server arguments (a replica's --replicaof). Stopped and its
// folder removed on destruction.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ticketflow/core/process.hpp"
#include "ticketflow/redis/client.hpp"

namespace ticketflow::redis {

struct EmbeddedRedisTls {
  std::string cert_file;  // the server's certificate and key (PEM)
  std::string key_file;
  std::string ca_file;  // the CA that signs clients' certificates, and the one the probe trusts
  bool require_client_certificate = false;
};

struct EmbeddedRedisOptions {
  bool append_only = false;
  std::optional<EmbeddedRedisTls> tls;
  std::vector<std::string> extra_args;
};

class EmbeddedRedisServer {
 public:
  // Starts the server and waits until it answers PING. Throws std::runtime_error naming the
  // fix (install redis-server) if it cannot.
  explicit EmbeddedRedisServer(bool append_only = false);
  explicit EmbeddedRedisServer(EmbeddedRedisOptions options);
  ~EmbeddedRedisServer();
  EmbeddedRedisServer(const EmbeddedRedisServer&) = delete;
  EmbeddedRedisServer& operator=(const EmbeddedRedisServer&) = delete;

  int port() const { return port_; }
  std::string url() const {
    return (options_.tls ? "rediss://127.0.0.1:" : "redis://127.0.0.1:") + std::to_string(port_) + "/0";
  }
  // Stops the server (SIGKILL when `crash`), keeping the port for restart().
  void stop(bool crash = false);
  void restart();

 private:
  void start();
  RedisEndpoint probeEndpoint() const;
  std::string dir_;
  EmbeddedRedisOptions options_;
  int port_ = 0;
  std::unique_ptr<ChildProcess> process_;
};

}  // namespace ticketflow::redis
